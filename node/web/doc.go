// Package web is the browser front end every node serves: the jobs list, a
// job's task tree that updates live, a task's log that follows live (with
// ANSI colours), and the mesh. Pages are html/template files embedded in the
// binary; live updates are Server-Sent Events carrying server-rendered HTML
// fragments, which a few lines of inline JavaScript put in place.
//
// The package reads the mesh through a Source (the node implements it), so
// it can be tested without one.
//
// Concurrency: the handlers are safe for concurrent use; the embedded
// files are read-only.
package web
