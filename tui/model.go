package tui

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
)

// pane is what has the keyboard.
type pane int

const (
	paneConvs pane = iota
	paneLog
	paneInput
)

// Messages the model receives besides keys and sizes.
type (
	// startMsg carries what the TUI loads once: the gateway's keys, the
	// catalog and the conversations.
	startMsg struct {
		gw    *api.Gateway
		cat   *api.Catalog
		convs []api.Summary
		err   error
	}
	// convsMsg is a periodic re-read of the conversation list.
	convsMsg struct {
		convs []api.Summary
		err   error
	}
	recordMsg struct {
		conv string
		rec  conversation.Record
	}
	connMsg struct{ conv, state string }
	// followEndMsg says a conversation's stream stopped for good.
	followEndMsg struct {
		conv string
		err  error
	}
	// doneMsg is the outcome of an action (a vote, a post). A vote names
	// its conversation and request (or proposal), whose in-flight mark a
	// refusal clears.
	doneMsg struct {
		what, done      string
		err             error
		conv, req, prop string
	}
	// restartMsg restarts a conversation's stream that ended.
	restartMsg struct{ conv string }
	tickMsg    time.Time
	refreshMsg struct{}
	// eventMsg wraps a message from the follow goroutines; after handling
	// it the model listens for the next one.
	eventMsg struct{ msg tea.Msg }
)

// Model is the TUI's state. Update and View are pure but for the
// commands Update returns.
type Model struct {
	ctx     context.Context
	backend Backend
	self    string
	now     func() time.Time
	loc     *time.Location
	ttl     time.Duration
	events  chan tea.Msg
	want    string // the conversation to select once loaded

	selfName string // the name in the user's identity file

	width, height int
	loaded        bool
	gateway       string
	cat           *api.Catalog
	convs         []*convState
	sel           int
	focus         pane
	input         editor
	secret        editor
	help          help.Model
	secretFor     string // the service a hidden key is being typed for
	secretTTL     time.Duration
	reason        editor  // the reason prompt's field
	asked         *asking // what the reason prompt is open for; nil when closed
	overlay       string  // "help", "members" or ""
	status        string
	statusErr     bool
	quitting      bool
	// shown is the card the last frame drew as selected: the one a, r and
	// c act on (see onScreen). View sets it.
	shown struct {
		conv string
		seq  uint64
	}
}

// New returns a model; nothing talks to the server until Init's commands run.
func New(ctx context.Context, o Options) *Model {
	m := &Model{ctx: ctx, backend: o.Backend, self: o.Self, selfName: o.SelfName, now: o.Now, loc: o.Location, ttl: o.RequestTTL,
		events: make(chan tea.Msg, 256), want: o.Conversation, width: 100, height: 30, focus: paneLog}
	if m.now == nil {
		m.now = time.Now
	}
	if m.loc == nil {
		m.loc = time.Local
	}
	if m.ttl == 0 {
		m.ttl = time.Hour
	}
	m.input = editor{prompt: "> ", placeholder: "chat, or / for a command (/help)", limit: twokey.MaxTextBytes}
	m.secret = editor{mask: '•', limit: 8 << 10}
	m.reason = editor{limit: 4 * gate.MaxReasonChars} // bytes; the characters are checked on enter
	m.help = newHelp()
	m.help.SetWidth(m.width)
	return m
}

// Init loads the gateway, catalog and conversations, and starts the clock.
func (m *Model) Init() tea.Cmd {
	return tea.Batch(m.loadCmd(), m.tickCmd(), m.listenCmd(), m.refreshCmd())
}

func (m *Model) conv() *convState {
	if m.sel < 0 || m.sel >= len(m.convs) {
		return nil
	}
	return m.convs[m.sel]
}

func (m *Model) convByID(id string) *convState {
	for _, c := range m.convs {
		if c.id == id {
			return c
		}
	}
	return nil
}

func (m *Model) setStatus(err bool, format string, args ...any) {
	m.status, m.statusErr = safeLine(fmt.Sprintf(format, args...)), err
}

// Update handles one message.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case eventMsg:
		_, cmd := m.Update(msg.msg)
		return m, tea.Batch(cmd, m.listenCmd())
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.help.SetWidth(msg.Width)
		return m, nil
	case startMsg:
		return m, m.start(msg)
	case convsMsg:
		if msg.err != nil {
			return m, nil
		}
		cmd := m.addConvs(msg.convs)
		m.selectWanted()
		return m, cmd
	case refreshMsg:
		if !m.loaded {
			return m, tea.Batch(m.loadCmd(), m.refreshCmd())
		}
		return m, tea.Batch(m.convsCmd(), m.refreshCmd())
	case recordMsg:
		m.record(msg.conv, msg.rec)
		return m, nil
	case connMsg:
		if c := m.convByID(msg.conv); c != nil {
			c.conn = safeLine(msg.state)
		}
		return m, nil
	case followEndMsg:
		return m, m.followEnded(msg)
	case restartMsg:
		c := m.convByID(msg.conv)
		if c == nil || c.retryAt.IsZero() || m.ctx.Err() != nil {
			return m, nil
		}
		c.retryAt, c.conn = time.Time{}, "reconnecting: restarting the stream"
		return m, m.followCmd(c.id, c.lastSeq())
	case doneMsg:
		if msg.err != nil {
			m.setStatus(true, "could not %s: %s", msg.what, errText(msg.err))
			m.clearSending(msg.conv, msg.req, msg.prop)
		} else {
			m.setStatus(false, "%s", msg.done)
		}
		return m, nil
	case tickMsg:
		return m, m.tickCmd()
	case tea.KeyPressMsg:
		return m, m.key(msg)
	case tea.PasteMsg:
		if m.focus == paneInput {
			m.edited(m.editing().insert(msg.Content))
		}
		return m, nil
	}
	return m, nil
}

// edited reports on the status line what an edit refused (a paste or a
// key past the field's limit); the text itself is never repeated.
func (m *Model) edited(err error) {
	if err != nil {
		m.setStatus(true, "%s", errText(err))
	}
}

// clearSending clears the in-flight mark of a vote the server refused.
func (m *Model) clearSending(conv, req, prop string) {
	c := m.convByID(conv)
	if c == nil {
		return
	}
	if req != "" {
		delete(c.sendingReq, req)
	}
	if prop != "" {
		delete(c.sendingProp, prop)
	}
}

// followEnded takes the end of a conversation's stream. A refusal that
// retrying cannot cure (not a member) is shown as it is; anything else
// restarts the stream after a backoff, which the header counts down.
func (m *Model) followEnded(msg followEndMsg) tea.Cmd {
	c := m.convByID(msg.conv)
	if c == nil || m.ctx.Err() != nil {
		return nil
	}
	if msg.err != nil && permanentStreamError(msg.err) {
		c.conn, c.retryAt = safeLine("stopped: "+errText(msg.err)), time.Time{}
		return nil
	}
	why := "the stream ended"
	if msg.err != nil {
		why = "the stream ended: " + errText(msg.err)
	}
	d := followBackoff(c.restarts)
	c.restarts++
	c.conn, c.retryAt = safeLine(why), m.now().Add(d)
	conv := c.id
	return tea.Tick(d, func(time.Time) tea.Msg { return restartMsg{conv} })
}

// editing is the field the input line shows: the hidden one while a key
// is being typed.
func (m *Model) editing() *editor {
	if m.secretFor != "" {
		return &m.secret
	}
	if m.asked != nil {
		return &m.reason
	}
	return &m.input
}

// start takes the loaded gateway, catalog and conversations.
func (m *Model) start(msg startMsg) tea.Cmd {
	if msg.err != nil {
		m.setStatus(true, "%s (retrying)", errText(msg.err))
		return nil
	}
	m.loaded, m.gateway, m.cat = true, msg.gw.SigningKey, msg.cat
	if m.status != "" && m.statusErr {
		m.status, m.statusErr = "", false
	}
	cmd := m.addConvs(msg.convs)
	if m.want != "" {
		if i := m.findConv(m.want); i >= 0 {
			m.sel, m.want = i, ""
		} else {
			// The server lists only the conversations the user is in: one
			// it does not list may exist without them. m.want stays, so
			// that it is selected once they are added (selectWanted).
			name := m.selfName
			if name == "" {
				name = "NAME"
			}
			m.setStatus(true, "you are not a member of a conversation %q: ask its admin to add your key id, with 'twokey member add %s %s=%s' (or 'twokey member propose %s --add %s=%s' once its gateway is on)",
				m.want, m.want, name, m.self, m.want, name, m.self)
			return cmd
		}
	}
	if len(m.convs) == 0 {
		m.setStatus(false, "no conversations yet: make one with 'twokey conv create NAME --member name=KEY', or ask a conversation's admin to add your key id %s", m.self)
	}
	return cmd
}

// selectWanted selects the conversation named at start once the user is
// in it (an admin added them after the TUI started).
func (m *Model) selectWanted() {
	if m.want == "" {
		return
	}
	if i := m.findConv(m.want); i >= 0 {
		m.sel, m.want = i, ""
		m.setStatus(false, "you are now a member of %s", m.convs[i].name)
	}
}

func (m *Model) findConv(ref string) int {
	for i, c := range m.convs {
		if c.id == ref || c.name == ref {
			return i
		}
	}
	for i, c := range m.convs {
		if len(ref) >= 4 && strings.HasPrefix(c.id, ref) {
			return i
		}
	}
	return -1
}

// addConvs adds conversations not yet followed and starts following them.
func (m *Model) addConvs(list []api.Summary) tea.Cmd {
	var selID string
	if c := m.conv(); c != nil {
		selID = c.id
	}
	var cmds []tea.Cmd
	for _, s := range list {
		if m.convByID(s.ID) != nil {
			continue
		}
		m.convs = append(m.convs, newConvState(s, m.gateway, m.cat))
		cmds = append(cmds, m.followCmd(s.ID, 0))
	}
	slices.SortStableFunc(m.convs, func(a, b *convState) int {
		if a.name != b.name {
			return strings.Compare(a.name, b.name)
		}
		return strings.Compare(a.id, b.id)
	})
	for i, c := range m.convs {
		if c.id == selID {
			m.sel = i
		}
	}
	return tea.Batch(cmds...)
}

// record takes one record of a conversation's stream.
//
// While the cursor follows the log it moves to each new record, except
// off a card that waits for the user's vote: a request or proposal
// arriving below never takes the place of the one selected just as a or
// r is pressed. The cursor follows again once that card no longer waits
// (the user voted, or it closed) and the next record arrives. The records
// the log held when the TUI started are replayed without stopping: the
// cursor starts on the newest.
func (m *Model) record(conv string, rec conversation.Record) {
	c := m.convByID(conv)
	if c == nil {
		return
	}
	if !c.add(rec) {
		return // a duplicate: already held
	}
	it := c.items[len(c.items)-1]
	c.restarts = 0 // the stream works: a later restart starts from the shortest wait
	if it.msg != nil && it.msg.Author == m.self {
		switch it.rec.Kind {
		case conversation.KindGateApprove, conversation.KindGateReject:
			m.clearSending(c.id, it.reqID, "")
		case conversation.KindMemberApprove:
			m.clearSending(c.id, "", it.reqID)
		}
	}
	if c.follow {
		if cur := c.selected(); rec.Seq > c.loaded && cur != it && m.votable(c, cur) {
			if c == m.conv() && m.votable(c, it) {
				m.setStatus(false, "#%d below also waits for your vote: the selection stays on #%d (j or G moves)", it.rec.Seq, cur.rec.Seq)
			}
		} else {
			c.cursor = len(c.items) - 1
			c.scroll = 0
		}
	}
	if rec.Seq > c.loaded && c != m.conv() {
		c.unread++
	}
}

// key handles a key press.
func (m *Model) key(k tea.KeyPressMsg) tea.Cmd {
	s := k.String()
	if s == "ctrl+c" {
		m.quitting = true
		return tea.Quit
	}
	if m.focus == paneInput {
		return m.inputKey(k)
	}
	if m.overlay != "" {
		m.overlay = "" // any key closes it
		return nil
	}
	m.status = ""
	switch {
	case key.Matches(k, keys.Quit):
		m.quitting = true
		return tea.Quit
	case key.Matches(k, keys.Help):
		m.overlay = "help"
	case key.Matches(k, keys.Pane):
		return m.setFocus((m.focus + 1) % 3)
	case key.Matches(k, keys.PanePrev):
		return m.setFocus((m.focus + 2) % 3)
	case key.Matches(k, keys.Command):
		cmd := m.setFocus(paneInput)
		if s == "/" && m.input.Value() == "" {
			m.input.SetValue("/")
		}
		return cmd
	case key.Matches(k, keys.Down):
		m.move(1)
	case key.Matches(k, keys.Up):
		m.move(-1)
	case key.Matches(k, keys.Top):
		m.moveTo(0)
	case key.Matches(k, keys.Bottom):
		m.moveTo(1 << 30)
	case key.Matches(k, keys.ScrollDown):
		m.scrollCard(m.logHeight() / 2)
	case key.Matches(k, keys.ScrollUp):
		m.scrollCard(-m.logHeight() / 2)
	case key.Matches(k, keys.Approve):
		return m.voteSelected(voteApprove)
	case key.Matches(k, keys.ApproveWhy):
		return m.voteSelected(voteApproveWhy)
	case key.Matches(k, keys.Reject):
		return m.voteSelected(voteReject)
	case key.Matches(k, keys.Veto):
		return m.voteSelected(voteVeto)
	case key.Matches(k, keys.Cancel):
		return m.cancelSelected()
	case key.Matches(k, keys.Expand):
		if c := m.conv(); c != nil && m.focus == paneLog {
			if it := c.selected(); it != nil && m.foldable(c, it) {
				c.expanded[it.rec.Seq] = !c.expanded[it.rec.Seq]
				c.scroll = 0
				return nil
			}
		}
		if s == "enter" {
			return m.setFocus(paneInput)
		}
	}
	return nil
}

// foldable reports whether a card has a body long enough to fold.
func (m *Model) foldable(c *convState, it *item) bool {
	if it.msg == nil {
		return false
	}
	switch it.rec.Kind {
	case conversation.KindGateResponse:
		return true
	case conversation.KindGateRequest:
		var p gate.RequestPayload
		return json.Unmarshal(it.disp, &p) == nil && len(p.Body) > 0 && len(pretty(string(p.Body))) > foldRequest
	}
	return false
}

func (m *Model) setFocus(p pane) tea.Cmd {
	m.focus = p
	m.input.focused = p == paneInput && m.secretFor == "" && m.asked == nil
	m.secret.focused = p == paneInput && m.secretFor != ""
	m.reason.focused = p == paneInput && m.asked != nil && m.secretFor == ""
	return nil
}

// move moves the selection in the focused pane.
func (m *Model) move(d int) {
	if m.focus == paneConvs {
		if len(m.convs) == 0 {
			return
		}
		m.sel = max(0, min(len(m.convs)-1, m.sel+d))
		m.convs[m.sel].unread = 0
		return
	}
	c := m.conv()
	if c == nil {
		return
	}
	m.moveTo(c.cursor + d)
}

func (m *Model) moveTo(i int) {
	if m.focus == paneConvs {
		if len(m.convs) > 0 {
			m.sel = max(0, min(len(m.convs)-1, i))
			m.convs[m.sel].unread = 0
		}
		return
	}
	c := m.conv()
	if c == nil || len(c.items) == 0 {
		return
	}
	c.cursor = max(0, min(len(c.items)-1, i))
	c.follow = c.cursor == len(c.items)-1
	c.scroll = 0
}

func (m *Model) scrollCard(d int) {
	if c := m.conv(); c != nil {
		c.scroll = max(0, c.scroll+d)
	}
}

// inputKey handles a key while the input line has the keyboard.
func (m *Model) inputKey(k tea.KeyPressMsg) tea.Cmd {
	if m.secretFor != "" {
		switch k.String() {
		case "esc":
			m.secretFor = ""
			m.secret.Reset()
			m.setStatus(false, "no key stored")
			return m.setFocus(paneLog)
		case "enter":
			return m.storeSecret()
		}
		m.edited(m.secret.key(k))
		return nil
	}
	if m.asked != nil {
		return m.promptKey(k)
	}
	switch k.String() {
	case "esc":
		return m.setFocus(paneLog)
	case "enter":
		line := strings.TrimSpace(m.input.Value())
		if line == "" {
			return m.setFocus(paneLog)
		}
		m.input.Reset()
		return m.submitLine(line)
	case "tab":
		if strings.HasPrefix(m.input.Value(), "/") {
			m.complete()
			return nil
		}
		return m.setFocus(paneConvs)
	case "shift+tab":
		return m.setFocus(paneLog)
	}
	m.edited(m.input.key(k))
	return nil
}
