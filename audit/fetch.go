package audit

import (
	"context"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/conversation"
)

// Fetch reads conversation conv from a server into an export: first a
// checkpoint, then every record (so the records reach at least as far as
// the checkpoint), the gateway's key and the catalog facts. It is the only
// part of this package that talks to a server; Verify needs none.
func Fetch(ctx context.Context, c *client.Client, conv string) (*Export, error) {
	cp, err := c.Checkpoint(ctx, conv)
	if err != nil {
		return nil, err
	}
	gw, err := c.Gateway(ctx)
	if err != nil {
		return nil, err
	}
	cat, err := c.Catalog(ctx)
	if err != nil {
		return nil, err
	}
	var recs []conversation.Record
	for {
		var after uint64
		if len(recs) > 0 {
			after = recs[len(recs)-1].Seq
		}
		page, err := c.Records(ctx, conv, after, twokey.MaxPageRecords)
		if err != nil {
			return nil, err
		}
		recs = append(recs, page...)
		if len(page) < twokey.MaxPageRecords {
			break
		}
	}
	return NewExport(conv, gw.SigningKey, c.Base, cat.Services, cat.Templates,
		Checkpoint{Seq: cp.Seq, Chain: cp.Chain, Envelope: cp.Envelope}, recs, time.Now()), nil
}
