# shellcheck shell=sh
# functions.sh: the OurCI verbs for build scripts. POSIX sh (dash, bash, busybox).
#
# Source it from a build script:
#
#     . /path/to/scripts/functions.sh
#
# The seed's scripts source it as `. $(dirname $0)/ourci/scripts/functions.sh`,
# beside themselves: `ourci-node functions -o DIR/ourci/scripts/functions.sh`
# writes the copy that an ourci-node binary carries for each such DIR.
#
# It defines functions only: sourcing it runs nothing and sets no options.
# Names it uses internally start with _ourci_ to stay out of the script's way.
#
# Environment read:
#   OURCI_BIN        the ourci-node binary to run (default: ourci-node, looked up
#                    in PATH; inside a task PATH starts with the node's binary dir).
#   OURCI_SPAWN_ENV  space-separated list of variable names; each one that is set
#                    is passed on to spawned tasks as --env NAME=VALUE (task
#                    environments are not inherited). Unset, it is "BASE_SDK
#                    ESP_SDK": the seed's image names, which its scripts use but
#                    never set, reach the whole tree from the job's first spawn
#                    (spawn --env BASE_SDK=... --env ESP_SDK=...). Set it, even
#                    to "", to choose.
#   OURCI_TOKEN, OURCI_NODE, OURCI_SECRET_FILE: read by ourci-node itself; inside a
#                    task they make the new task a child of the current one, and
#                    scope blob names to the task's job.

# spawn_task -t TOPIC IMAGE "CMD ARGS"   (a Docker topic)
# spawn_task -t TOPIC ARG...             (a host or agent-script topic)
#
#   Publishes a new task on TOPIC, in the same job as the running task (a new job
#   when run outside a task), and prints the new task's id on stdout.
#   As the seed means it: the first argument is the Docker image when the nodes
#   serving TOPIC run it in Docker (they gossip so), else it is an argument like
#   the others; a first argument "-" or "" is the no-image marker, dropped, so
#   `spawn_task -t TOPIC - ARG...` also works everywhere. A topic served both in
#   Docker and not is refused with a message saying how to write it.
#   The task's command: one argument is a shell command line (as the seed's
#   "OTA=1 ci/fw/esp8266.sh"), several are run directly; an agent-script topic
#   passes them to its script.
#   Returns 2 on a usage error, and the status of ourci-node spawn (non-zero,
#   with a message on stderr naming the topic) when the spawn failed.
#   Runs: $OURCI_BIN spawn -t TOPIC [--env K=V]... --image-first -- ARGS...
spawn_task() {
	if [ "$#" -lt 3 ] || [ "$1" != "-t" ] || [ -z "$2" ]; then
		echo "spawn_task: usage: spawn_task -t TOPIC IMAGE \"CMD ARGS\" (a Docker topic) or spawn_task -t TOPIC ARG... (host and agent topics)" >&2
		return 2
	fi
	_ourci_topic=$2
	shift 2
	set -- --image-first -- "$@"
	for _ourci_var in ${OURCI_SPAWN_ENV-BASE_SDK ESP_SDK}; do
		case $_ourci_var in
		'' | [0-9]* | *[!A-Za-z0-9_]*)
			echo "spawn_task: OURCI_SPAWN_ENV: bad variable name '$_ourci_var'" >&2
			return 2
			;;
		esac
		eval "_ourci_set=\${$_ourci_var+x}"
		if [ -n "$_ourci_set" ]; then
			eval "_ourci_val=\$$_ourci_var"
			set -- --env "$_ourci_var=$_ourci_val" "$@"
		fi
	done
	if _ourci_id=$("${OURCI_BIN:-ourci-node}" spawn -t "$_ourci_topic" "$@"); then
		printf '%s\n' "$_ourci_id"
		return 0
	else
		_ourci_rc=$?
		echo "spawn_task: spawning on topic '$_ourci_topic' failed (exit $_ourci_rc)" >&2
		return "$_ourci_rc"
	fi
}

# blob_upload FILE [NAME]
#
#   Stores FILE in the blob store of the node (content-addressed: the blob is
#   named by its SHA-256) and prints its reference, sha256:<hex>, on stdout.
#   With NAME (the seed's "blob_upload fw.tar.gz ${FW_BLOB}"), NAME also refers
#   to the blob within the current job, so that a later task of the job can
#   fetch it with `curl "${BLOB_URL}/NAME"` or blob_download NAME. An empty NAME
#   means none. A name is 1..200 bytes of [A-Za-z0-9._/-], with no "." or ".."
#   element and no leading "/".
#   Returns 2 on a usage error, and the status of ourci-node blob put (non-zero,
#   with a message on stderr naming FILE) when the upload failed.
#   Runs: $OURCI_BIN blob put [--name NAME] -- FILE
blob_upload() {
	if [ "$#" -lt 1 ] || [ "$#" -gt 2 ] || [ -z "$1" ]; then
		echo "blob_upload: usage: blob_upload FILE [NAME]" >&2
		return 2
	fi
	_ourci_file=$1
	if [ -n "${2:-}" ]; then
		set -- --name "$2" -- "$1"
	else
		set -- -- "$1"
	fi
	if _ourci_ref=$("${OURCI_BIN:-ourci-node}" blob put "$@"); then
		printf '%s\n' "$_ourci_ref"
		return 0
	else
		_ourci_rc=$?
		echo "blob_upload: uploading '$_ourci_file' failed (exit $_ourci_rc)" >&2
		return "$_ourci_rc"
	fi
}

# blob_download REF [FILE]
#
#   Fetches the blob REF into FILE (replaced atomically; "-" writes it to
#   stdout). REF is sha256:<hex>, <hex>, or a name given by blob_upload in the
#   current job. FILE defaults to the last path element of REF ("fw/fw.tar.gz"
#   gives fw.tar.gz). The node fetches a blob it lacks from a node holding it and
#   verifies its hash. Prints nothing on success.
#   Returns 2 on a usage error, and the status of ourci-node blob get (non-zero,
#   with a message on stderr naming REF) when the download failed; 5 means no
#   such blob.
#   Runs: $OURCI_BIN blob get -o FILE -- REF
blob_download() {
	if [ "$#" -lt 1 ] || [ "$#" -gt 2 ] || [ -z "$1" ]; then
		echo "blob_download: usage: blob_download REF [FILE]" >&2
		return 2
	fi
	_ourci_out=${2:-${1##*/}}
	if [ -z "$_ourci_out" ]; then
		echo "blob_download: '$1' has no last path element to name the file after: give FILE" >&2
		return 2
	fi
	if "${OURCI_BIN:-ourci-node}" blob get -o "$_ourci_out" -- "$1"; then
		return 0
	else
		_ourci_rc=$?
		echo "blob_download: downloading '$1' to '$_ourci_out' failed (exit $_ourci_rc)" >&2
		return "$_ourci_rc"
	fi
}
