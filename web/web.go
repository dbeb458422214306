// Package web holds the browser app, embedded into the binary: plain ES
// modules, a style sheet and the vendored crypto the browser lacks, served
// by the server at / with nothing fetched from anywhere else.
package web

import (
	"embed"
	"io/fs"
)

//go:embed app
var files embed.FS

// App is the app's files, index.html at its root.
var App fs.FS = mustSub(files, "app")

func mustSub(f fs.FS, dir string) fs.FS {
	s, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return s
}
