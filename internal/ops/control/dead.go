package control

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
)

// MaxDeadLetters bounds one page of dead letters.
const MaxDeadLetters = 1000

// DeadLetters returns the newest dead letters (at most limit) older than sequence before (0: from
// the newest), how many there are, and the cursor of the next page.
func (s *Service) DeadLetters(ctx context.Context, limit int, before uint64) (DeadLetters, error) {
	limit = min(max(limit, 1), MaxDeadLetters)
	st, err := s.js.Stream(ctx, s.cfg.DeadStream)
	if err != nil {
		return DeadLetters{}, fmt.Errorf("dead-letter stream %q: %w", s.cfg.DeadStream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return DeadLetters{}, fmt.Errorf("dead-letter stream %q: %w", s.cfg.DeadStream, err)
	}
	out := DeadLetters{Total: info.State.Msgs, Items: []DeadLetter{}}
	from := info.State.LastSeq
	if before > 0 {
		from = min(from, before-1)
	}
	for seq := from; seq >= info.State.FirstSeq && seq > 0 && len(out.Items) < limit; seq-- {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // deleted (re-driven) or aged out
		}
		if err != nil {
			return DeadLetters{}, fmt.Errorf("dead letter %d: %w", seq, err)
		}
		out.Items = append(out.Items, deadLetter(m))
	}
	if n := len(out.Items); n == limit && out.Items[n-1].Seq > info.State.FirstSeq {
		out.Next = out.Items[n-1].Seq
	}
	return out, nil
}

func deadLetter(m *jetstream.RawStreamMsg) DeadLetter {
	h := m.Header
	d := DeadLetter{Seq: m.Sequence, Time: m.Time, Size: len(m.Data),
		Code: h.Get(contract.HeaderDeadCode), Reason: h.Get(contract.HeaderDeadReason),
		OriginalSubject: h.Get(contract.HeaderDeadSubject)}
	d.OriginalSeq, _ = strconv.ParseUint(h.Get(contract.HeaderDeadSeq), 10, 64)
	if d.Omitted = h.Get(contract.HeaderDeadOmitted); d.Omitted != "" {
		d.OriginalSize, _ = strconv.Atoi(h.Get(contract.HeaderDeadSize))
		d.OriginalSHA256 = h.Get(contract.HeaderDeadSHA256)
	}
	if e, err := cenats.Decode(h, m.Data); err == nil {
		d.EventID, d.EventType = e.ID(), e.Type()
	}
	return d
}

// Redrive publishes dead letters again to the subjects they came from and removes them from the
// dead-letter stream: for triggers that failed for a reason since fixed (a directory created in
// vIDM, a tenant configured). Each is published with a message id derived from its dead-letter
// sequence, so a re-drive repeated after a crash is de-duplicated by the trigger stream; one that
// is still bad is dead-lettered again with its reason. No seqs means every dead letter.
func (s *Service) Redrive(ctx context.Context, seqs []uint64) (RedriveResult, error) {
	st, err := s.js.Stream(ctx, s.cfg.DeadStream)
	if err != nil {
		return RedriveResult{}, fmt.Errorf("dead-letter stream %q: %w", s.cfg.DeadStream, err)
	}
	all := len(seqs) == 0
	if all {
		info, err := st.Info(ctx)
		if err != nil {
			return RedriveResult{}, fmt.Errorf("dead-letter stream %q: %w", s.cfg.DeadStream, err)
		}
		for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
			seqs = append(seqs, seq)
		}
	}
	// Dead letters are re-driven after the cause was fixed, often a directory just created in
	// vIDM: read its directory list now, so intake does not answer from a list older than the fix.
	if err := s.dirs.Probe(ctx); err != nil {
		s.log.Warn("re-drive: refreshing a directory list failed; intake uses its cached list", "err", err)
	}
	res := RedriveResult{Redriven: []uint64{}}
	for _, seq := range seqs {
		err := s.redrive(ctx, st, seq)
		switch {
		case err == nil:
			res.Redriven = append(res.Redriven, seq)
		case errors.Is(err, jetstream.ErrMsgNotFound) && all:
			// A gap left by an earlier re-drive.
		case errors.Is(err, jetstream.ErrMsgNotFound):
			res.Failed = append(res.Failed, RedriveFailure{Seq: seq, Error: "no such dead letter (already re-driven or expired)"})
		default:
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			res.Failed = append(res.Failed, RedriveFailure{Seq: seq, Error: err.Error()})
		}
	}
	s.log.Info("dead letters re-driven", "redriven", len(res.Redriven), "failed", len(res.Failed))
	return res, nil
}

func (s *Service) redrive(ctx context.Context, st jetstream.Stream, seq uint64) error {
	m, err := st.GetMsg(ctx, seq)
	if err != nil {
		return err
	}
	subject := m.Header.Get(contract.HeaderDeadSubject)
	if subject == "" {
		return ErrNoOriginalSubject
	}
	if m.Header.Get(contract.HeaderDeadOmitted) != "" {
		return ErrNotKept
	}
	out := nats.NewMsg(subject)
	out.Data = m.Data
	for k, vs := range m.Header {
		if strings.HasPrefix(k, "Dirsync-") || k == nats.MsgIdHdr || strings.HasPrefix(k, "Nats-") {
			continue
		}
		out.Header[k] = vs
	}
	out.Header.Set(nats.MsgIdHdr, fmt.Sprintf("redrive:%s:%d", s.cfg.DeadStream, seq))
	if _, err := s.js.PublishMsg(ctx, out); err != nil {
		return fmt.Errorf("publishing to %s: %w", subject, err)
	}
	// Deleted only once re-published: a crash in between re-drives it again, de-duplicated.
	if err := st.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("removing it from the dead-letter stream: %w", err)
	}
	return nil
}
