// Package trust holds twokey's trust suite, as tests only: crash tests that
// kill a real 'twokey serve' child process with SIGKILL and check that
// nothing acknowledged is lost and nothing executes twice, fault tests (a
// broken upstream, a full disk, a locked database, a WebSocket client that
// never reads), the attack suite (one table entry per attack, each naming
// the rule that stops it) and the secret-leak test.
//
// docs/security.md is the index: for each attack, the rule, the code that
// stops it and the test here that proves it. 'make test' runs the short
// form; TWOKEY_LONG=1 (make test-long) runs the long one.
package trust
