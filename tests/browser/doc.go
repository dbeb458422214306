// Package browser holds the browser app's tests, as tests only: a real
// twokey server on loopback and Debian's chromium, headless, driven over
// the DevTools protocol by chromedp.
//
// harness_test.go is the harness the app's tests share: newBrowser (one
// chromium per test, a fresh profile), newTab (a page in a browser context
// of its own, so a separate IndexedDB), bounded actions, the page's console
// errors and uncaught exceptions in the test log, and screenshots in
// $TWOKEY_ARTIFACTS (default bin/artifacts/browser), one taken on every
// failure. crypto_test.go holds web/app/crypto.js to the Go implementation
// in both directions, over the shared vectors of testdata/vectors.json
// (regenerated from Go's crypto with -update) and a real server's logs.
//
// Without chromium the tests skip, or fail when CI=true; install it with
// 'apt-get install chromium' (.ci/run does).
package browser
