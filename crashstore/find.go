package crashstore

import (
	"context"
	"errors"
)

// Find looks the crash id up in each of stores in turn (the standard tree,
// then the deferred tree) and returns the first store that holds it, with
// its entry. When none does it returns ErrNotFound with the first store. A
// lookup that fails otherwise (an invalid id, an I/O error, a fault of the
// whole tree) ends the search with that store and its error: a crash is
// never looked for further down while a tree before it could not be read.
// held, when not nil, is asked before each store is read; an error from it
// (the tree waits for a fault to clear) ends the search the same way.
func Find(ctx context.Context, id string, held func(*Store) error, stores ...*Store) (*Store, Entry, error) {
	for _, s := range stores {
		if held != nil {
			if err := held(s); err != nil {
				return s, Entry{}, err
			}
		}
		e, err := s.Lookup(ctx, id)
		if !errors.Is(err, ErrNotFound) {
			return s, e, err
		}
	}
	var first *Store
	if len(stores) > 0 {
		first = stores[0]
	}
	return first, Entry{}, ErrNotFound
}

// Presence is what of a crash exists on disk at one moment.
type Presence struct {
	JSON, Dump bool // the pair's files
	Inbox      bool // its date link, which the scanner's walks read
}

// Present reports what of e exists now, one lstat per path (a link is
// present even when it dangles; a path that cannot be checked counts as
// present, so that what is done next meets the error). An entry without a
// date link is not in the inbox.
func (s *Store) Present(e Entry) Presence {
	return Presence{
		JSON:  present(e.JSONPath),
		Dump:  present(e.DumpPath),
		Inbox: present(e.DateLink),
	}
}

// InInbox reports whether e's inbox link is there (Present's Inbox, at the
// cost of one lstat instead of three).
func (s *Store) InInbox(e Entry) bool { return present(e.DateLink) }
