package load

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"time"
)

// rawSocket is a WebSocket client with no goroutine and no buffers of its
// own: a TCP connection that did the handshake and sent a subscribe frame.
// Idle-connection memory is measured with these, so that what grows is the
// server's share, not the client's; a stalled subscriber is one of these
// that never reads.
func rawSocket(addr, token, conv string, after uint64, rcvbuf int) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	if rcvbuf > 0 {
		c.(*net.TCPConn).SetReadBuffer(rcvbuf)
	}
	fail := func(err error) (net.Conn, error) {
		c.Close()
		return nil, err
	}
	var key [16]byte
	rand.Read(key[:])
	c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = fmt.Fprintf(c, "GET /v1/ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n",
		addr, base64.StdEncoding.EncodeToString(key[:]), token)
	if err != nil {
		return fail(err)
	}
	// Read the answer's head byte by byte: nothing after it may be
	// consumed, and no reader buffer is kept.
	var head []byte
	var b [1]byte
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		if len(head) > 4096 {
			return fail(fmt.Errorf("websocket handshake: answer head too long"))
		}
		if _, err := c.Read(b[:]); err != nil {
			return fail(fmt.Errorf("websocket handshake: %w", err))
		}
		head = append(head, b[0])
	}
	if !strings.HasPrefix(string(head), "HTTP/1.1 101") {
		return fail(fmt.Errorf("websocket handshake refused: %s", strings.SplitN(string(head), "\r\n", 2)[0]))
	}
	if err := rawSubscribe(c, conv, after); err != nil {
		return fail(err)
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// rawSubscribe sends a subscribe frame on a raw socket.
func rawSubscribe(c net.Conn, conv string, after uint64) error {
	msg, _ := json.Marshal(map[string]any{"op": "subscribe", "conversation": conv, "after": after})
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	defer c.SetWriteDeadline(time.Time{})
	_, err := c.Write(maskedText(msg))
	return err
}

// maskedText frames msg as a client's text message (clients must mask).
func maskedText(msg []byte) []byte {
	f := []byte{0x81}
	switch n := len(msg); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n < 1<<16:
		f = append(f, 0x80|126, byte(n>>8), byte(n))
	default:
		panic("maskedText: message too long")
	}
	var mask [4]byte
	rand.Read(mask[:])
	f = append(f, mask[:]...)
	for i, c := range msg {
		f = append(f, c^mask[i%4])
	}
	return f
}
