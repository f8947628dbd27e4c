package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/ourci/ourci/node"
	"github.com/ourci/ourci/node/github"
)

// githubFlags are join's --github-* and notification flags. Secrets come
// from files or the environment, never from the command line.
type githubFlags struct {
	secretFile, tokenFile, apiURL        string
	appID, appKeyFile                    string
	topic, image, command, pushBranches  string
	trustForks, noSupersede              bool
	publicURL, cloneURL                  string
	notifyWebhook, notifySecretFile      string
	smtpAddr, smtpFrom, smtpUser, smtpPw string
}

func (g *githubFlags) register(fs interface {
	StringVar(*string, string, string, string)
	BoolVar(*bool, string, bool, string)
}) {
	fs.StringVar(&g.secretFile, "github-secret-file", env("OURCI_GITHUB_SECRET_FILE", ""), "file with the webhook secret: turns POST /webhook/github on")
	fs.StringVar(&g.tokenFile, "github-token-file", env("OURCI_GITHUB_TOKEN_FILE", ""), "file with the GitHub API token for commit statuses (or env OURCI_GITHUB_TOKEN)")
	fs.StringVar(&g.appID, "github-app-id", env(github.AppIDEnv, ""), "GitHub App ID: check runs as the App, with installation tokens per repository (needs --github-app-key-file)")
	fs.StringVar(&g.appKeyFile, "github-app-key-file", env(github.AppKeyFileEnv, ""), "the GitHub App's private key (PEM, RSA, as GitHub generates it)")
	fs.StringVar(&g.apiURL, "github-api-url", env("OURCI_GITHUB_API_URL", ""), "GitHub API base URL (GitHub Enterprise: https://HOST/api/v3/)")
	fs.StringVar(&g.topic, "github-topic", "ourci/build/docker", "topic of a GitHub job's root task")
	fs.StringVar(&g.image, "github-image", env("OURCI_GITHUB_IMAGE", ""), "image of a GitHub job's root task (the base SDK)")
	fs.StringVar(&g.command, "github-command", "ci/all.sh", "command of a GitHub job's root task, run in the checkout")
	fs.StringVar(&g.pushBranches, "github-push-branches", "main,master", "pushes to these branches open jobs (comma-separated; * for any; empty for none)")
	fs.BoolVar(&g.trustForks, "github-trust-forks", false, "run pull requests from forks without `ourci-node approve`")
	fs.BoolVar(&g.noSupersede, "github-keep-superseded", false, "let older jobs of a pull request run on after a newer push")
	fs.StringVar(&g.cloneURL, "github-clone-url", env("OURCI_GITHUB_CLONE_URL", ""), "URL jobs check out, {owner} and {repo} filled in (e.g. git@github.com:{owner}/{repo}.git); default: the payload's clone_url")
	fs.StringVar(&g.publicURL, "public-url", env("OURCI_PUBLIC_URL", ""), "base URL of job links in commit statuses and notifications (default: the node's API URL)")
	fs.StringVar(&g.notifyWebhook, "notify-webhook", env("OURCI_NOTIFY_WEBHOOK", ""), "URL that gets a JSON notification when a GitHub job fails or recovers")
	fs.StringVar(&g.notifySecretFile, "notify-secret-file", "", "file with a secret that signs notification webhooks (X-Ourci-Signature-256)")
	fs.StringVar(&g.smtpAddr, "smtp-addr", env("OURCI_SMTP_ADDR", ""), "SMTP server HOST:PORT for failure e-mails to the commit's author")
	fs.StringVar(&g.smtpFrom, "smtp-from", env("OURCI_SMTP_FROM", "ourci@localhost"), "sender of notification e-mails")
	fs.StringVar(&g.smtpUser, "smtp-user", env("OURCI_SMTP_USER", ""), "SMTP user (password from env OURCI_SMTP_PASSWORD)")
}

func (g *githubFlags) config() (*node.GitHubConfig, error) {
	if g.secretFile == "" && g.tokenFile == "" && os.Getenv(github.TokenEnv) == "" && g.appID == "" && g.appKeyFile == "" {
		return nil, nil
	}
	c := &node.GitHubConfig{
		APIURL: g.apiURL, Topic: g.topic, Image: g.image, Command: strings.Fields(g.command),
		TrustForks: g.trustForks, NoSupersede: g.noSupersede, PublicURL: g.publicURL, CloneURL: g.cloneURL,
	}
	for _, b := range strings.Split(g.pushBranches, ",") {
		if b = strings.TrimSpace(b); b != "" {
			c.PushBranches = append(c.PushBranches, b)
		}
	}
	if g.secretFile != "" {
		b, err := os.ReadFile(g.secretFile)
		if err != nil {
			return nil, fmt.Errorf("--github-secret-file: %w", err)
		}
		if c.WebhookSecret = []byte(strings.TrimSpace(string(b))); len(c.WebhookSecret) == 0 {
			return nil, fmt.Errorf("--github-secret-file %s is empty", g.secretFile)
		}
	}
	if g.tokenFile != "" || os.Getenv(github.TokenEnv) != "" {
		tok, err := github.LoadToken(g.tokenFile)
		if err != nil {
			return nil, err
		}
		c.Token = tok
	}
	if (g.appID == "") != (g.appKeyFile == "") {
		return nil, fmt.Errorf("--github-app-id and --github-app-key-file (or $%s and $%s) go together", github.AppIDEnv, github.AppKeyFileEnv)
	}
	if g.appID != "" {
		id, err := github.ParseAppID(g.appID)
		if err != nil {
			return nil, fmt.Errorf("--github-app-id: %w", err)
		}
		key, err := github.LoadAppKey(g.appKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--github-app-key-file: %w", err)
		}
		c.AppID, c.AppKey = id, key
	}
	if g.notifyWebhook != "" || g.smtpAddr != "" {
		nt := &github.Notifier{WebhookURL: g.notifyWebhook, SMTPAddr: g.smtpAddr, SMTPFrom: g.smtpFrom,
			SMTPUser: g.smtpUser, SMTPPassword: os.Getenv("OURCI_SMTP_PASSWORD")}
		if g.notifySecretFile != "" {
			b, err := os.ReadFile(g.notifySecretFile)
			if err != nil {
				return nil, fmt.Errorf("--notify-secret-file: %w", err)
			}
			nt.WebhookSecret = []byte(strings.TrimSpace(string(b)))
		}
		c.Notify = nt
	}
	return c, nil
}
