package main

import (
	"strings"
	"testing"
)

// TestWebhooksUsageErrors: a wrong 'twokey webhooks' command line exits 2
// with its words, the usage line and an example, before anything is sent
// (the server here is out of reach: a call would exit 3).
func TestWebhooksUsageErrors(t *testing.T) {
	env := map[string]string{"TWOKEY_HOME": t.TempDir(), "TWOKEY_SERVER": "http://127.0.0.1:1", "TWOKEY_MANAGEMENT_KEY": "k"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"webhooks", "add", "hook"}, "webhooks add takes NAME URL; got 1 argument"},
		{[]string{"webhooks", "add", "hook", "https://h.example/x"}, "--conversation '*' for all of them"},
		{[]string{"webhooks", "add", "hook", "https://h.example/x", "--conversation", " "}, "--conversation is empty"},
		{[]string{"webhooks", "add", "hook", "https://h.example/x", "--conversation", "ops", "--format", "xml"}, `--format "xml": give json, slack or ntfy`},
		{[]string{"webhooks", "add", "hook", "https://h.example/x", "--conversation", "ops", "--detail", "all"}, `--detail "all": give summary or full`},
		{[]string{"webhooks", "add", "hook", "https://h.example/x", "--conversation", "ops", "--event", "request.executd"}, `no event "request.executd"; did you mean request.executed?`},
		{[]string{"webhooks", "add", "hook", "https://h.example/x", "--conversation", "ops", "--event", "zzz"}, `no event "zzz"; the events are request.created, `},
		{[]string{"webhooks", "edit", "hook"}, "nothing to change: give at least one of --url"},
		{[]string{"webhooks", "edit", "hook", "--url", ""}, "--url is empty"},
		{[]string{"webhooks", "edit", "hook", "--event", ""}, "--event is empty"},
		{[]string{"webhooks", "edit", "hook", "--event", "request.created", "--default-events"}, "give --event or --default-events, not both"},
		{[]string{"webhooks", "rotate", "hook", "--grace", "soon"}, `--grace "soon" is not a duration`},
		{[]string{"webhooks", "deliveries", "hook", "--state", "lost"}, `--state "lost": give queued, delivered or dead`},
		{[]string{"webhooks", "deliveries", "hook", "--limit", "1001"}, "--limit 1001: give 1 to 1000"},
		{[]string{"webhooks", "deliveries", "hook", "--limit", "x"}, `--limit "x" is not a whole number`},
		{[]string{"webhooks", "test"}, "webhooks test takes NAME; got none"},
		{[]string{"webhooks", "rm", "a", "b"}, "webhooks rm takes NAME; got 2 arguments"},
		{[]string{"webhooks", "ls", "extra"}, "webhooks ls takes no arguments; got 1 argument"},
	} {
		code, out, errs := run(t, env, c.args...)
		if code != exitUsage || out != "" || !strings.Contains(errs, c.want) {
			t.Errorf("twokey %s: exit %d, stdout %q, want exit 2 with %q:\n%s", strings.Join(c.args, " "), code, out, c.want, errs)
		}
		if !strings.Contains(errs, "usage:   twokey webhooks ") || !strings.Contains(errs, "example: twokey webhooks ") {
			t.Errorf("twokey %s: no usage line and example:\n%s", strings.Join(c.args, " "), errs)
		}
	}
	// Without the management key: usage, naming where it goes.
	delete(env, "TWOKEY_MANAGEMENT_KEY")
	if code, _, errs := run(t, env, "webhooks", "ls"); code != exitUsage || !strings.Contains(errs, "set TWOKEY_MANAGEMENT_KEY") {
		t.Errorf("no management key: exit %d\n%s", code, errs)
	}
}
