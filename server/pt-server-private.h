/* peertree-server internals shared by the server's modules.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Everything here runs on the server's one GMainContext: no locking.
 *
 * The modules, from the top down; each calls only files below it:
 *
 *   pt-server.c        the GObject: properties, config, listen/stop, the sweep;
 *                      calls each module's init
 *   pt-clients.c       hello, list-clients, is-connected
 *   pt-tree-handlers.c create, join, leave, reconnect-upstream, signal, rejoin;
 *                      the source's grace period and the rebuild after a restart
 *   pt-services.c      services and topics, the built-in service "peertree"
 *   pt-messaging.c     acks and the reply request, emit, add-target, rooms, streams
 *   pt-dashboard.c     GET /dashboard (page and script from the GResource) and
 *                      /dashboard/events (server-sent events of the trees)
 *   pt-http.c          HTTP: GET /status, /metrics, static resources, the
 *                      WebSocket upgrade that makes a PtConn
 *   pt-web.c           HTTP: GET /watch/TREE-ID, GET /peertree.js (a GResource)
 *   pt-request.c       PtRequest, the one handler registry, hooks, dispatch
 *   pt-rights.c        what a token allows: the check of every request type
 *   pt-cluster.c       --redis: several servers as one service (docs/cluster.md);
 *                      pt-redis.c: hiredis on the main loop
 *   pt-limits.c        per-IP limits (sockets, connection rate, trees), refusal log
 *   pt-auth.c          tokens (JWS HS256): verify, sign; pure
 *   pt-conn.c          connections: sending, replies, lookup, rate, teardown
 *   pt-metrics.c       the counters (every module bumps its own in self->metrics)
 *                      and GET /metrics' text (Prometheus 0.0.4)
 *   pt-json.c          the server's own readers (args, timeout), random ids
 *   common/pt-protocol the protocol: names, typed getters, faults, id and name rules
 *   pt-ws.c, pt-tree.c WebSocket framing on epoll; the k-tree
 *
 * A module registers its request types with pt_server_add_handler() and its
 * part of the server's life (a client gone, the sweep, stop, finalize) with
 * pt_server_add_hooks(), from its init function.
 */
#pragma once

#include "pt-auth.h"
#include "pt-server.h"
#include "pt-tree.h"
#include "pt-ws.h"

#include "common/pt-protocol.h"

#include <libsoup/soup.h>

/* WebSocket close codes used by the server. */

/* Per-client bounds (docs/protocol.md). */
#define PT_MAX_PENDING 256         /* requests awaiting another client's reply */
#define PT_MAX_ROOMS 64
#define PT_MAX_STREAMS 64
#define PT_MAX_SUBSCRIPTIONS 256
#define PT_MAX_SERVICES 16
#define PT_MAX_TOPICS 256          /* per service */
#define PT_MAX_METHODS 256         /* declared per service */
#define PT_MAX_LIST 1000           /* entries in one list-clients reply */
#define PT_STREAM_WINDOW (256 * 1024) /* bytes in flight per stream direction */
#define PT_DEFAULT_TIMEOUT_MS 10000
#define PT_MAX_TIMEOUT_MS 120000
#define PT_LISTEN_BACKLOG 1024     /* the kernel caps it at net.core.somaxconn */

typedef struct _PtConn PtConn;
typedef struct _PtRequest PtRequest;
typedef struct _PtHooks PtHooks;
typedef struct _PtCluster PtCluster;
typedef struct _PtClusterConn PtClusterConn;

/* GET /metrics (pt-metrics.c has their names): why a connection was refused */
typedef enum {
  PT_REJECT_IP_CONNECTIONS,  /* max-connections-per-ip */
  PT_REJECT_IP_RATE,         /* connection-rate-per-ip */
  PT_REJECT_SOCKETS,         /* the descriptor cap */
  PT_REJECT_MAX_CLIENTS,     /* an upgrade beyond max-clients */
  PT_REJECT_ORIGIN,          /* an Origin not in allowed-origins */
  PT_REJECT_EVENT_STREAMS,   /* /dashboard/events beyond max-event-streams */
  PT_N_REJECT
} PtRejectReason;

/* how a member got a new parent */
typedef enum {
  PT_MOVE_PARENT_LEFT,       /* upstream event, reason parent-left */
  PT_MOVE_SOURCE_RETURNED,
  PT_MOVE_REBUILT,
  PT_MOVE_RECONNECTED,       /* reconnect-upstream */
  PT_MOVE_REJOINED,          /* a join by a member */
  PT_MOVE_SHED,              /* upstream event, reason shed (capacity) */
  PT_N_MOVE
} PtMoveReason;

#define PT_METRICS_MAX_CODES 64

typedef struct {
  guint64 joins;
  guint64 moves[PT_N_MOVE];
  guint64 source_losses;
  guint64 trees_created, trees_closed;
  guint64 reports;
  guint64 messages_received, bytes_received;
  guint64 messages_relayed, bytes_relayed;
  guint64 errors[PT_METRICS_MAX_CODES];  /* by index in pt_error_codes() */
  guint64 rejected[PT_N_REJECT];
  guint64 event_streams_dropped;         /* SSE subscribers that did not read */
} PtMetrics;

struct _PtServer {
  GObject parent_instance;

  /* configuration */
  char *host;
  guint port;
  guint k, k1;
  guint max_message_size;
  guint keepalive_interval; /* s */
  guint dead_timeout;       /* s */
  guint rate, burst;        /* messages per second, bucket size */
  guint max_clients;
  guint max_trees_per_client;
  guint max_buffered;       /* bytes queued to a client that does not read */
  guint source_grace;       /* s a tree outlives its source's disconnection */
  gboolean allow_takeover;
  guint http_timeout;       /* s an HTTP connection may take to send a request */
  char *auth_key_path;      /* NULL: open server, no token needed */
  guint max_connections_per_ip;  /* 0: no limit (also below) */
  guint connection_rate_per_ip;  /* per second */
  guint conn_burst_per_ip;
  guint max_trees_per_ip;
  guint max_trees;
  char *allowed_origins;    /* as set (allowed-origins) */
  char **origins;           /* its entries; NULL: no Origin check */
  guint max_event_streams;  /* GET /dashboard/events subscribers */

  /* tokens: the key read from auth_key_path at listen */
  GBytes *auth_key;
  /* per-IP limits (pt-limits.c): address -> PtIpEntry* */
  GHashTable *ips;
  guint n_refusals_logged, n_refusals_unlogged;
  char *stun;               /* "stun:HOST:PORT" handed out in hello, or NULL */
  char *turn;               /* "turn:HOST:PORT[?transport=…]", or NULL */
  char *turn_secret_file;   /* coturn's static-auth-secret, read at listen */
  guint turn_ttl;           /* s the TURN credentials of a hello are valid */
  char *turn_secret;        /* the file's first line */
  char *tls_cert_path;      /* PEM certificate (chain) and key: wss:// and https */
  char *tls_key_path;       /* on the same port as ws://; NULL: plain only */
  GTlsCertificate *tls_cert; /* loaded at listen */
  char *redis_url;          /* redis://HOST:PORT[/DB]: one service with the other servers on it */
  PtCluster *cluster;       /* pt-cluster.c, with redis_url, from listen to stop */

  /* state */
  SoupServer *soup;
  /* HTTP (pt-http.c): the server owns its listening socket */
  GSocket *listener;
  GSource *accept_source;   /* watching the listener, or NULL while backing off */
  GSource *accept_retry;    /* the backoff after a failed accept */
  int spare_fd;             /* given up to shed a connection when out of descriptors */
  guint max_sockets;        /* HTTP and WebSocket, below the descriptor limit */
  GHashTable *http_conns;   /* GSocket* -> PtHttpConn* (owning): not upgraded yet */
  GCancellable *tls_cancel; /* TLS handshakes in progress, cancelled at stop */
  guint bound_port;
  GMainContext *context;
  GSource *sweep;
  GHashTable *conns;    /* PtConn* -> PtConn* (owning) */
  GHashTable *clients;  /* clientId -> PtConn* (registered only) */
  /* clientIds of departed clients, kept for their secret's holder for
   * source-grace seconds: clientId -> PtReservation* (pt-clients.c) */
  GHashTable *reserved;
  PtWsLoop *ws_loop;    /* every client socket, on one epoll set */

  /* the registry (pt-request.c) */
  JsonParser *parser;   /* reused for every message */
  GHashTable *handlers; /* request type -> PtHandlerEntry* (owning) */
  void (*binary_handler) (PtConn *c, const guint8 *data, gsize len);
  GPtrArray *hooks;     /* const PtHooks*, in registration order */

  /* trees (pt-tree-handlers.c) */
  GHashTable *trees;    /* tree id -> TreeEntry* (owning) */
  /* positions reported after a server restart, waiting for their tree or
   * their parent: tree id -> GPtrArray of Claim* */
  GHashTable *claims;

  /* messaging (pt-messaging.c) */
  guint64 next_ack;
  GHashTable *acks;     /* guint64* ack id -> PtAck* (owning) */
  GHashTable *rooms;    /* room name -> PtRoom* (owning) */
  guint32 next_stream;
  GHashTable *streams;  /* guint32 id -> PtStream* (owning) */

  /* services (pt-services.c) */
  GHashTable *services; /* name -> PtService* (owning) */

  /* observability */
  PtMetrics metrics;
  /* the dashboard's subscribers (pt-dashboard.c): PtEventStream* (owning) */
  GHashTable *event_streams;
  GHashTable *dirty_trees;  /* tree id (owned) set: shape changed since the last flush */
  GHashTable *dirty_reports; /* tree id (owned) -> set of member ids (owned): new reports */
  GSource *dashboard_flush; /* pending flush of the above, or NULL */
  /* GET /dashboard… (pt-http.c routes there; pt-dashboard.c sets it) */
  void (*dashboard_route) (PtServer *self, SoupServerMessage *msg, const char *path);
};

typedef struct {
  PtServer *server;
  char *id;
  char *ip;                 /* of the connection that created it (per-IP limit) */
  PtTree *tree;
  guint8 secret_hash[32];   /* proves ownership when the source comes back */
  gboolean has_secret;
  char *data_key;           /* the source's Ed25519 public key (base64), or NULL */
  gboolean source_gone;     /* within the source grace period */
  gint64 grace_deadline;
  /* after a restart: member -> set of the children it reported at rejoin;
   * a reported position is attached silently only if its parent lists it */
  GHashTable *reports;
  /* the latest link report of each member: member (owned) -> PtLinkStats* */
  GHashTable *link_stats;
  /* member -> gint64* when it last reported itself overloaded (rate limit);
   * NULL until one does */
  GHashTable *overload_at;
} TreeEntry;

/* A member's latest report (the report request). */
typedef struct {
  PtReport report;
  gint64 at;                /* pt_now() when accepted */
} PtLinkStats;

typedef void (*PtReceiveFunc) (PtConn *c, gboolean binary, const guint8 *data, gsize len);

struct _PtConn {
  PtServer *server;
  PtWs *ws;
  PtReceiveFunc receive;         /* every message read (pt_request_receive) */
  char *client_id;               /* NULL before hello */
  char *ip;                      /* the peer's address; NULL for a socket pair */
  PtGrants *grants;              /* with an auth key: what the hello's token grants */
  guint8 secret_hash[32];
  gboolean has_secret;
  GHashTable *trees;             /* tree id (owned by entry) -> TreeEntry* */
  gint64 connected_at, last_seen;
  double tokens;
  gint64 tokens_at;
  gboolean gone;
  gboolean slow;                 /* stopped reading: nothing more is sent, the sweep closes it */
  gboolean closed;               /* the socket is closed: only freeing is left */
  gint64 last_ping;

  /* messaging; each set is NULL until first used, to keep idle clients small */
  guint n_pending;               /* acks this client waits for */
  GHashTable *acks;              /* PtAck* set: waited for by or from this client */
  GHashTable *rooms;             /* room name (owned by room) -> PtRoom* */
  GHashTable *targets;           /* clientId (owned) set */
  GHashTable *streams;           /* PtStream* set */
  GHashTable *subscriptions;     /* PtTopic* set */
  GHashTable *services;          /* PtService* set, provided by this client */

  /* pt-cluster.c: a proxy of another server's client (no socket: what is sent
   * to it is published to its server), and the cluster's per-connection state */
  gboolean remote;
  PtClusterConn *cl;
};


/* The server's clock (microseconds, monotonic): g_get_monotonic_time() plus
 * pt_clock_offset, which only the fuzzing harness moves (its virtual clock). */
extern gint64 pt_clock_offset;

static inline gint64
pt_now (void)
{
  return g_get_monotonic_time () + pt_clock_offset;
}

/* Runs the once-a-second sweep now (the fuzzing harness, after moving the clock). */
void pt_server_sweep_now (PtServer *self);

/* Sets of pointers (and of strings), NULL until first used. */
static inline GHashTable *
pt_lazy_set (GHashTable **set)
{
  if (!*set)
    *set = g_hash_table_new (NULL, NULL);
  return *set;
}

static inline GHashTable *
pt_lazy_str_set (GHashTable **set)
{
  if (!*set)
    *set = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  return *set;
}

static inline guint
pt_set_size (GHashTable *set)
{
  return set ? g_hash_table_size (set) : 0;
}

/* ---- pt-json.c: request fields ---- */

gboolean pt_get_args (JsonObject *obj, JsonNode **out, PtFault *f);
gboolean pt_get_timeout (JsonObject *obj, gint64 *deadline, PtFault *f);
char *pt_random_id (const char *prefix);

/* ---- pt-conn.c: connections ---- */

PtConn *pt_conn_new (PtServer *self, int fd, const guint8 *initial, gsize initial_len,
    PtReceiveFunc receive);
PtConn *pt_conn_new_stream (PtServer *self, GIOStream *stream, int fd, const guint8 *initial,
    gsize initial_len, PtReceiveFunc receive);
PtConn *pt_conn_lookup (PtServer *self, const char *client_id);
/* Queues @obj to @c; FALSE if @c is gone or does not read (slow). */
gboolean pt_conn_send (PtConn *c, JsonObject *obj);
void pt_conn_send_binary (PtConn *c, const guint8 *data, gsize len);
/* The same for what one client sends another through the server (signal,
 * emit, room-emit, service-call, topic, stream frames): counted in
 * peertree_relayed_messages_total and peertree_relayed_bytes_total. */
gboolean pt_conn_relay (PtConn *c, JsonObject *obj);
void pt_conn_relay_binary (PtConn *c, const guint8 *data, gsize len);
/* One message for many recipients (room-emit, topics, a client's
 * disconnection told to its targets): serialised once, by the first
 * recipient that can take it. */
typedef struct {
  JsonObject *obj;              /* not owned */
  char *text;                   /* NULL until needed */
  gsize len;
} PtOutgoing;
#define PT_OUTGOING_INIT(o) { (o), NULL, 0 }
/* @m to @c; FALSE if @c is gone or slow; @relayed: counted as relayed */
gboolean pt_conn_deliver (PtConn *c, PtOutgoing *m, gboolean relayed);
void pt_outgoing_clear (PtOutgoing *m);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (PtOutgoing, pt_outgoing_clear)
void pt_conn_reply_ok (PtConn *c, gint64 id, JsonObject *result);
void pt_conn_reply_error (PtConn *c, gint64 id, const PtFault *f);
JsonObject *pt_event_new (const char *name, const char *tree_id);
void pt_send_event_to (PtServer *self, const char *client_id, JsonObject *event);
void pt_conn_gone (PtConn *c, gushort code, const char *reason);
gboolean pt_conn_take_token (PtConn *c);
void pt_conn_free (PtConn *c);
void pt_hash_secret (const char *secret, guint8 out[32]);
gboolean pt_secret_equal (const guint8 *a, const guint8 *b);

/* Writes an already serialised message to @c's socket (a message from another
 * server of the cluster). */
void pt_conn_send_raw (PtConn *c, gboolean binary, const guint8 *data, gsize len);

/* ---- pt-request.c: requests, the handler registry, hooks ---- */

/* Handles one request of its type. Returns TRUE with *result (NULL: an empty
 * object) to be replied, or FALSE with @f set to reply an error. */
typedef gboolean (*PtHandler) (PtRequest *req, PtConn *c, JsonObject *msg, JsonObject **result,
    PtFault *f);
typedef void (*PtAfterReplyFunc) (PtServer *self, gpointer data);

/* The request being handled, handed to its handler. */
struct _PtRequest {
  PtServer *server;
  PtConn *conn;
  JsonObject *msg;     /* valid during the handler call only */
  gint64 id;
  /* A rejoin {source: true} handed to create: the source reclaims its tree
   * over links that may still be up. */
  gboolean rejoin;
  gboolean deferred;   /* pt_request_defer() */
  GArray *after;       /* after-reply work, in order */
};

/* The reply will be sent later (pt_conn_reply_ok/error with req->id), not on return. */
void pt_request_defer (PtRequest *req);
/* Runs @func (server, @data) once the reply of a successful request is out;
 * @destroy frees @data, run or not. */
void pt_request_after_reply (PtRequest *req, PtAfterReplyFunc func, gpointer data,
    GDestroyNotify destroy);
/* Reads one WebSocket message of @c: the PtReceiveFunc of every connection. */
void pt_request_receive (PtConn *c, gboolean binary, const guint8 *data, gsize len);
/* Handles one text message of @c (also a request forwarded by another server). */
void pt_request_dispatch (PtConn *c, const char *text, gsize len);

typedef enum {
  PT_HANDLER_DEFAULT = 0,
  PT_HANDLER_BEFORE_HELLO = 1 << 0, /* may be the first request of a connection */
} PtHandlerFlags;

/* What a module takes part in beyond its requests; any member may be NULL. */
struct _PtHooks {
  /* A registered client is gone: forget it and tell the clients concerned. */
  void (*conn_gone) (PtConn *c);
  /* Once a second. */
  void (*sweep) (PtServer *self, gint64 now);
  /* The server stops: drop all state, tell no one (the sockets are closing). */
  void (*reset) (PtServer *self);
  /* Free what the module's init made. */
  void (*finalize) (PtServer *self);
};

void pt_request_init (PtServer *self);
void pt_request_finalize (PtServer *self);
void pt_server_add_handler (PtServer *self, const char *type, PtHandler handler,
    PtHandlerFlags flags);
/* Binary frames after hello (streams); one handler. */
void pt_server_set_binary_handler (PtServer *self,
    void (*handler) (PtConn *c, const guint8 *data, gsize len));
/* @hooks must outlive the server (a static). Run in registration order. */
void pt_server_add_hooks (PtServer *self, const PtHooks *hooks);

/* ---- the modules' init functions, called by pt-server.c ---- */

void pt_clients_init (PtServer *self);
void pt_tree_handlers_init (PtServer *self);
void pt_messaging_init (PtServer *self);
void pt_services_init (PtServer *self);

/* pt-messaging.c, for pt-services.c */
enum { PT_ACK_EMIT, PT_ACK_TARGET, PT_ACK_STREAM, PT_ACK_SERVICE };
/* Defers @req until @to answers the event that carries the returned ack id. */
guint64 pt_ack_new (PtRequest *req, PtConn *to, int kind, gint64 deadline);
gboolean pt_check_pending (PtConn *c, PtFault *f);

/* pt-cluster.c: --redis (docs/cluster.md). Without it every function is a no-op. */
void pt_cluster_init (PtServer *self);
gboolean pt_cluster_start (PtServer *self, GError **error);
void pt_cluster_stop (PtServer *self);
/* Whether request @type of @c belongs to another server, or must wait for
 * Redis to say so: TRUE if taken (forwarded or dispatched later). */
gboolean pt_cluster_route (PtConn *c, const char *type, JsonObject *msg, gint64 id,
    const char *text, gsize len);
/* Publishes what is sent to a proxy to its client's server. */
void pt_cluster_send (PtConn *c, gboolean binary, const void *data, gsize len);
void pt_cluster_proxy_free (PtConn *c);
void pt_cluster_conn_free (PtConn *c);
/* @c said hello (with @token, or NULL). */
void pt_cluster_client_registered (PtConn *c, const char *token);
/* @name (a tree, room or service id after @prefix pt:tree:, pt:room:,
 * pt:svc:) is held here: recorded unless another live server holds it. */
void pt_cluster_claim (PtServer *self, const char *prefix, const char *name);
/* @c joined (left) room @name: the set of its rooms, pt:rooms:CLIENTID. */
void pt_cluster_room_member (PtConn *c, const char *name, gboolean joined);
/* list-rooms {clientId}: deferred and answered from Redis; FALSE without it. */
gboolean pt_cluster_list_rooms (PtRequest *req, const char *client_id);
/* A stream frame of our client @c for a stream another server holds: passed
 * on, TRUE; FALSE if none does (the caller handles it as unknown). */
gboolean pt_cluster_stream_frame (PtConn *c, guint32 id, guint8 op, const guint8 *data,
    gsize len);
gboolean pt_cluster_is_up (PtServer *self);
/* GET /status: "service", the servers of the service and their trees. */
void pt_cluster_add_status (PtServer *self, JsonObject *root);
/* GET /metrics: the service's figures (peertree_cluster_*). */
void pt_cluster_add_metrics (PtServer *self, GString *out);
guint pt_cluster_n_proxies (PtServer *self);
/* list-clients over the whole service: defers @req, replies later; FALSE if
 * Redis is not there (the caller lists this server's clients). */
gboolean pt_cluster_list_clients (PtRequest *req, const char *prefix, guint limit);

/* pt-limits.c */
void pt_limits_init (PtServer *self);
void pt_limits_finalize (PtServer *self);
void pt_limits_sweep (PtServer *self, gint64 now);
/* A new connection from @ip: FALSE (logged) if over its cap or its rate. */
gboolean pt_limits_accept (PtServer *self, const char *ip);
/* Whether @ip has max-connections-per-ip sockets open. */
gboolean pt_limits_at_cap (PtServer *self, const char *ip);
void pt_limits_socket_opened (PtServer *self, const char *ip);
void pt_limits_socket_closed (PtServer *self, const char *ip);
/* A new tree from @ip: the global cap and the per-IP one (limit). */
gboolean pt_limits_tree_allowed (PtServer *self, const char *ip, PtFault *f);
void pt_limits_tree_added (PtServer *self, const char *ip);
void pt_limits_tree_removed (PtServer *self, const char *ip);
/* Logs a refusal of @ip at most once a minute (the others are counted). */
G_GNUC_PRINTF (3, 4) void pt_limits_log_refusal (PtServer *self, const char *ip,
    const char *fmt, ...);
char *pt_socket_peer_ip (GSocket *socket);

/* pt-rights.c */
/* With an auth key, whether @c's token allows request @type with @msg;
 * FALSE with @f set (forbidden) if not. Always TRUE on an open server. */
gboolean pt_rights_check (PtConn *c, const char *type, JsonObject *msg, PtFault *f);
/* Whether @c may take children in @tree_id (trees.relay; always on an open
 * server). */
gboolean pt_rights_can_relay (PtConn *c, const char *tree_id);
/* Whether @c may create a tree with the id the server chose. */
gboolean pt_rights_can_publish (PtConn *c, const char *tree_id);
/* Verifies an Authorization header's bearer token for GET /status: 0 if
 * allowed, else the HTTP status (401, 403). */
guint pt_rights_check_admin_header (PtServer *self, const char *authorization);

/* pt-metrics.c: the counters every module bumps, and GET /metrics */
void pt_metrics_count_error (PtServer *self, const char *code);
void pt_metrics_count_move (PtServer *self, const char *reason);
/* The text of GET /metrics, Prometheus' text format 0.0.4. */
GString *pt_metrics_text (PtServer *self);
/* A label value escaped for that format (\\, \", \n) appended to @out. */
void pt_metrics_escape_label (GString *out, const char *value);

/* pt-dashboard.c */
void pt_dashboard_init (PtServer *self);
/* The shape of @tree_id changed (join, leave, re-parenting, closing): the
 * subscribers get it at the next flush. Cheap when nobody watches. */
void pt_dashboard_tree_changed (PtServer *self, const char *tree_id);
/* @member of @tree_id sent a report. */
void pt_dashboard_report (PtServer *self, const char *tree_id, const char *member);
void pt_dashboard_sweep (PtServer *self, gint64 now);
/* Closes every subscriber (the server stops). */
void pt_dashboard_stop (PtServer *self);
void pt_dashboard_finalize (PtServer *self);
guint pt_dashboard_n_streams (PtServer *self);

/* pt-http.c */
gboolean pt_http_listen (PtServer *self, GSocketAddress *addr, GError **error);
void pt_http_stop (PtServer *self);
void pt_http_sweep (PtServer *self, gint64 now);
/* Sockets open: HTTP connections, WebSocket clients, event streams. */
guint pt_http_n_sockets (PtServer *self);
/* Answers @msg with the GResource file @name (server/resources/, e.g.
 * "dashboard.html") as @content_type; 404 if there is none. */
void pt_http_serve_resource (SoupServerMessage *msg, const char *name, const char *content_type);
/* Whether @msg is GET or HEAD; answers 405 otherwise. */
gboolean pt_http_check_get (SoupServerMessage *msg);
/* With an auth key, whether @msg carries an admin bearer token; answers
 * 401/403 (and logs the refusal, once a minute per address) if not. @what
 * names the resource in the log. */
gboolean pt_http_check_admin (PtServer *self, SoupServerMessage *msg, const char *what);
/* Whether @msg's Origin (if any) is allowed (allowed-origins); answers 403
 * (logged) if not. */
gboolean pt_http_check_origin (PtServer *self, SoupServerMessage *msg);
/* Takes @msg's connection away from libsoup (as the WebSocket upgrade does):
 * the socket leaves the HTTP connections (and their http-timeout). Returns
 * a descriptor of the socket (a duplicate: the caller closes it), and for
 * TLS the connection in *@tls (a reference); -1 on failure. *@ip: the peer's
 * address, counted as an open socket of it (pt_limits_socket_closed when done). */
int pt_http_take_connection (PtServer *self, SoupServerMessage *msg, GTlsConnection **tls,
    char **ip);

/* pt-web.c: GET /watch/TREE-ID and /peertree.js, on @soup */
void pt_web_init (PtServer *self, SoupServer *soup);
