// Package ha holds twokey's high-availability suite, as tests only: two
// twokey nodes on a real 3-member etcd cluster in-process (internal/
// etcdtest), the whole flow across them, and faults repeated in bounded
// loops (the executor killed mid-call and mid-commit, etcd's leader
// stopped, a node cut off from etcd). After each, every acknowledged
// record is there, no request is executed twice (the upstream counts the
// calls), every subscriber's stream has no gap and no duplicate, and the
// audit of an export verifies. docs/ha.md describes the rules they hold.
package ha
