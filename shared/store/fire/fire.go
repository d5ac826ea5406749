// Package fire is the Firestore store.Store backend. Several replicas may share one database: every write is a
// Firestore transaction over the record, its name-index document and (for creates) the ID counter document,
// so IDs stay sequential and names unique across replicas. Within one replica, writes are also serialised,
// which removes contention on the counter document there (Firestore aborts and retries contended
// transactions, which is slow).
//
// Layout, with P the collection prefix:
//
//	P_clusters/<id>          the record; field "id" orders List
//	P_cluster_names/n-<b64>  {id, name}: exists while a record has that name (base64url, since names may hold "/")
//	P_meta/cluster_counter   {last}: the last ID handed out
package fire

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kitefn/kitefn/shared/store"
)

// backendName is what Name returns and what *store.UnavailableError carries.
const backendName = "firestore"

// Defaults for Config.
const (
	DefaultDatabase = "(default)"
	DefaultPrefix   = "kitefn"
)

// maxAttempts bounds how often Firestore retries an aborted transaction. Contention between replicas on the
// counter document is real (the emulator needed ~5 attempts per transaction with 20 writers), and a retry only
// costs time. Measured on the emulator: when two instances' transactions collide on the counter, the loser's
// retry starts 2-4 s later (lock wait, abort, the client's backoff), so 100 creates racing over two instances
// take 3-10 s while one create takes ~10-25 ms.
const maxAttempts = 100

// prefixPattern keeps collection IDs valid: no "/", not "." or "..", not "__…__". Compiled in Open, not at
// package init: its bounded repetition makes a large program, and init time is cold-start time.
const prefixPattern = `^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$`

// Config says which database and collections to use.
type Config struct {
	// Project is the Google Cloud project; required.
	Project string
	// Database is the Firestore database ID; empty means "(default)".
	Database string
	// CollectionPrefix starts every collection's name, so several registries can share a database; empty
	// means "kitefn". Letters, digits, '-' and '_', starting with a letter or digit.
	CollectionPrefix string
	// ClientOptions are passed to the Firestore client (credentials, endpoint). The client itself honours
	// FIRESTORE_EMULATOR_HOST.
	ClientOptions []option.ClientOption
}

// Store is a store.Store over one Firestore database.
type Store struct {
	client   *firestore.Client
	clusters *firestore.CollectionRef
	names    *firestore.CollectionRef
	counter  *firestore.DocumentRef
	// writes is a one-slot semaphore that serialises this instance's transactions (see the package comment);
	// unlike a sync.Mutex, waiting for it respects the caller's context.
	writes store.WriteSlot
	// prefix starts the collection names (the tokens and audit collections are built from it).
	prefix string
	// where names the database in errors, e.g. "project p database (default) via emulator 127.0.0.1:8080".
	where string
}

var _ store.Store = (*Store)(nil)

// Open creates a Firestore client. It does not contact Firestore: the first operation does.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Project == "" {
		return nil, errors.New("firestore: no project given")
	}
	if cfg.Database == "" {
		cfg.Database = DefaultDatabase
	}
	if cfg.CollectionPrefix == "" {
		cfg.CollectionPrefix = DefaultPrefix
	}
	if !regexp.MustCompile(prefixPattern).MatchString(cfg.CollectionPrefix) {
		return nil, fmt.Errorf("firestore: collection prefix %q: want 1-100 letters, digits, '-' or '_', "+
			"starting with a letter or digit", cfg.CollectionPrefix)
	}
	// The client may keep the context for its credentials' token refreshes: it must outlive a start-up
	// deadline.
	client, err := firestore.NewClientWithDatabase(context.WithoutCancel(ctx), cfg.Project, cfg.Database, cfg.ClientOptions...)
	if err != nil {
		return nil, unavailable(fmt.Errorf("client for project %s database %s: %w", cfg.Project, cfg.Database, err))
	}
	p := cfg.CollectionPrefix
	where := fmt.Sprintf("project %s database %s", cfg.Project, cfg.Database)
	if client.UsesEmulator {
		where += " via emulator " + os.Getenv("FIRESTORE_EMULATOR_HOST")
	}
	return &Store{
		where:    where,
		client:   client,
		clusters: client.Collection(p + "_clusters"),
		names:    client.Collection(p + "_cluster_names"),
		counter:  client.Collection(p + "_meta").Doc("cluster_counter"),
		writes:   store.NewWriteSlot(),
		prefix:   p,
	}, nil
}

// Name implements store.Store.
func (s *Store) Name() string { return backendName }

// Close closes the client.
func (s *Store) Close() error {
	if err := s.client.Close(); err != nil {
		return unavailable(fmt.Errorf("close: %w", err))
	}
	return nil
}

// doc is the stored form of a record. Firestore has no unsigned integers; IDs and versions fit in int64.
type doc struct {
	ID          int64             `firestore:"id"`
	Name        string            `firestore:"name"`
	Server      string            `firestore:"server"`
	Kubeconfig  []byte            `firestore:"kubeconfig"`
	Labels      map[string]string `firestore:"labels"`
	Prometheus  promDoc           `firestore:"prometheus"`
	Impersonate bool              `firestore:"impersonate"`
	CreatedAt   time.Time         `firestore:"createdAt"`
	UpdatedAt   time.Time         `firestore:"updatedAt"`
	Version     int64             `firestore:"version"`
}

type promDoc struct {
	URL       string     `firestore:"url"`
	Status    string     `firestore:"status"`
	Message   string     `firestore:"message"`
	CheckedAt *time.Time `firestore:"checkedAt"`
}

type nameDoc struct {
	ID   int64  `firestore:"id"`
	Name string `firestore:"name"`
}

type counterDoc struct {
	Last int64 `firestore:"last"`
}

func toDoc(c *store.Cluster) doc {
	return doc{
		ID:         int64(c.ID),
		Name:       c.Name,
		Server:     c.Server,
		Kubeconfig: c.Kubeconfig,
		Labels:     c.Labels,
		Prometheus: promDoc{
			URL:       c.Prometheus.URL,
			Status:    string(c.Prometheus.Status),
			Message:   c.Prometheus.Message,
			CheckedAt: c.Prometheus.CheckedAt,
		},
		Impersonate: c.Impersonate,
		CreatedAt:   c.CreatedAt,
		UpdatedAt:   c.UpdatedAt,
		Version:     int64(c.Version),
	}
}

func fromSnapshot(snap *firestore.DocumentSnapshot) (*store.Cluster, error) {
	var d doc
	if err := snap.DataTo(&d); err != nil {
		return nil, fmt.Errorf("decode %s: %w", snap.Ref.ID, err)
	}
	return &store.Cluster{
		ID:         uint64(d.ID),
		Name:       d.Name,
		Server:     d.Server,
		Kubeconfig: d.Kubeconfig,
		Labels:     d.Labels,
		Prometheus: store.Prometheus{
			URL:       d.Prometheus.URL,
			Status:    store.PrometheusStatus(d.Prometheus.Status),
			Message:   d.Prometheus.Message,
			CheckedAt: store.NormTimePtr(d.Prometheus.CheckedAt),
		},
		Impersonate: d.Impersonate,
		CreatedAt:   d.CreatedAt.UTC(),
		UpdatedAt:   d.UpdatedAt.UTC(),
		Version:     uint64(d.Version),
	}, nil
}

func (s *Store) recordRef(id uint64) *firestore.DocumentRef {
	return s.clusters.Doc(strconv.FormatUint(id, 10))
}

// nameRef is the name-index document: base64url keeps any name a valid document ID, and the "n-" prefix keeps
// it clear of the reserved "__…__" IDs.
func (s *Store) nameRef(name string) *firestore.DocumentRef {
	return s.names.Doc(nameDocID(name))
}

func nameDocID(name string) string { return "n-" + base64.RawURLEncoding.EncodeToString([]byte(name)) }

// Create implements store.Store: one transaction reads the counter and the name, then bumps the counter and
// creates the record and the name document, so a failed create changes nothing.
func (s *Store) Create(ctx context.Context, c *store.Cluster) (*store.Cluster, error) {
	if err := store.CheckInput(backendName, c); err != nil {
		return nil, err
	}
	op := fmt.Sprintf("create %q", c.Name)
	if err := s.writes.Lock(ctx); err != nil {
		return nil, s.wrap(op, err)
	}
	defer s.writes.Unlock()

	rec := store.NewRecord(c)
	nameRef := s.nameRef(rec.Name)
	err := s.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snaps, err := tx.GetAll([]*firestore.DocumentRef{s.counter, nameRef})
		if err != nil {
			return err
		}
		if snaps[1].Exists() {
			return store.NameTaken(rec.Name)
		}
		var counter counterDoc
		if snaps[0].Exists() {
			if err := snaps[0].DataTo(&counter); err != nil {
				return fmt.Errorf("decode counter: %w", err)
			}
		}
		rec.ID = uint64(counter.Last) + 1
		if err := tx.Set(s.counter, counterDoc{Last: int64(rec.ID)}); err != nil {
			return err
		}
		if err := tx.Create(s.recordRef(rec.ID), toDoc(rec)); err != nil {
			return err
		}
		return tx.Create(nameRef, nameDoc{ID: int64(rec.ID), Name: rec.Name})
	}, firestore.MaxAttempts(maxAttempts))
	if err != nil {
		return nil, s.wrap(op, err)
	}
	return rec, nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, id uint64) (*store.Cluster, error) {
	snap, err := s.recordRef(id).Get(ctx)
	if err != nil {
		return nil, s.wrap(fmt.Sprintf("get %d", id), err)
	}
	c, err := fromSnapshot(snap)
	if err != nil {
		return nil, s.wrap(fmt.Sprintf("get %d", id), err)
	}
	return c, nil
}

// GetByName implements store.Store with one query on the records (Firestore queries are strongly
// consistent), so a concurrent rename cannot pair a name with another record.
func (s *Store) GetByName(ctx context.Context, name string) (*store.Cluster, error) {
	op := fmt.Sprintf("get %q", name)
	snaps, err := s.clusters.Where("name", "==", name).Limit(1).Documents(ctx).GetAll()
	if err != nil {
		return nil, s.wrap(op, err)
	}
	if len(snaps) == 0 {
		return nil, fmt.Errorf("%s %s: %w", backendName, op, store.ErrNotFound)
	}
	c, err := fromSnapshot(snaps[0])
	if err != nil {
		return nil, s.wrap(op, err)
	}
	return c, nil
}

// List implements store.Store; the iterator pages through large results by itself.
func (s *Store) List(ctx context.Context) ([]*store.Cluster, error) {
	out := []*store.Cluster{}
	it := s.clusters.OrderBy("id", firestore.Asc).Documents(ctx)
	defer it.Stop()
	for {
		snap, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, s.wrap("list", err)
		}
		c, err := fromSnapshot(snap)
		if err != nil {
			return nil, s.wrap("list", err)
		}
		out = append(out, c)
	}
}

// Update implements store.Store: one transaction checks the version and, on a rename, that the new name is
// free, then writes the record and moves the name document.
func (s *Store) Update(ctx context.Context, c *store.Cluster) (*store.Cluster, error) {
	if err := store.CheckInput(backendName, c); err != nil {
		return nil, err
	}
	op := fmt.Sprintf("update %d", c.ID)
	if err := s.writes.Lock(ctx); err != nil {
		return nil, s.wrap(op, err)
	}
	defer s.writes.Unlock()

	recRef, newNameRef := s.recordRef(c.ID), s.nameRef(c.Name)
	var out *store.Cluster
	err := s.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snaps, err := tx.GetAll([]*firestore.DocumentRef{recRef, newNameRef})
		if err != nil {
			return err
		}
		if !snaps[0].Exists() {
			return store.ErrNotFound
		}
		old, err := fromSnapshot(snaps[0])
		if err != nil {
			return err
		}
		rec, err := store.NextVersion(old, c)
		if err != nil {
			return err
		}
		if rec.Name != old.Name {
			if snaps[1].Exists() {
				return store.NameTaken(rec.Name)
			}
			if err := tx.Delete(s.nameRef(old.Name)); err != nil {
				return err
			}
			if err := tx.Create(newNameRef, nameDoc{ID: int64(rec.ID), Name: rec.Name}); err != nil {
				return err
			}
		}
		out = rec
		return tx.Set(recRef, toDoc(rec))
	}, firestore.MaxAttempts(maxAttempts))
	if err != nil {
		return nil, s.wrap(op, err)
	}
	return out, nil
}

// Delete implements store.Store: the record and its name document go in one transaction.
func (s *Store) Delete(ctx context.Context, id uint64) error {
	op := fmt.Sprintf("delete %d", id)
	if err := s.writes.Lock(ctx); err != nil {
		return s.wrap(op, err)
	}
	defer s.writes.Unlock()

	recRef := s.recordRef(id)
	err := s.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snap, err := tx.Get(recRef)
		if status.Code(err) == codes.NotFound {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		old, err := fromSnapshot(snap)
		if err != nil {
			return err
		}
		if err := tx.Delete(s.nameRef(old.Name)); err != nil {
			return err
		}
		return tx.Delete(recRef)
	}, firestore.MaxAttempts(maxAttempts))
	if err != nil {
		return s.wrap(op, err)
	}
	return nil
}

// wrap adds context and sorts errors: a missing document is store.ErrNotFound, conflicts pass through, refused
// input is a plain error, and anything else (unreachable server, deadline, exhausted retries) is a
// *store.UnavailableError.
func (s *Store) wrap(op string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrUnavailable):
		return fmt.Errorf("%s %s: %w", backendName, op, err)
	case status.Code(err) == codes.NotFound:
		return fmt.Errorf("%s %s: %w", backendName, op, store.ErrNotFound)
	case status.Code(err) == codes.InvalidArgument:
		// Firestore refused the input (a name too long for a document ID, a document over 1 MiB): not an outage.
		class := store.ErrInvalid
		if strings.Contains(strings.ToLower(status.Convert(err).Message()), "size") {
			class = store.ErrTooLarge
		}
		return fmt.Errorf("%s %s: %w: %s", backendName, op, class, status.Convert(err).Message())
	}
	return unavailable(fmt.Errorf("%s (%s): %w", op, s.where, err))
}

func unavailable(err error) error {
	return &store.UnavailableError{Backend: backendName, Err: err}
}
