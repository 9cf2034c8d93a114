/* pt-protocol — the signalling protocol of peertree, defined once.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * peertree-server (server/) and libpeertree (peertree/) both link this static
 * library; neither spells a message type, event, field, reason, error code,
 * close code or frame op itself. The sections follow docs/protocol.md, in its
 * order: envelope, names and limits of fields, close codes (limits and
 * connection handling), error codes, tree requests, tree events and their
 * reasons, messages between clients (requests, events, stream frames, the
 * server's own service), GET /status. Typed JSON getters and the message
 * table that tests/test-protocol.c holds against every example of
 * docs/protocol.md close the file.
 */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* ---- version ------------------------------------------------------------ */

#define PT_PROTOCOL_VERSION 1

/* ---- envelope: request, reply, event ------------------------------------- */

#define PT_F_TYPE "type"
#define PT_F_ID "id"
#define PT_F_NO_REPLY "noReply"
#define PT_TYPE_REPLY "reply"           /* server → client, and the reply request */
#define PT_TYPE_EVENT "event"
#define PT_F_OK "ok"
#define PT_F_RESULT "result"
#define PT_F_ERROR "error"
#define PT_F_CODE "code"
#define PT_F_MESSAGE "message"
#define PT_F_EVENT "event"              /* an event's name */
#define PT_MAX_REQUEST_ID (G_GINT64_CONSTANT (1) << 53)

/* ---- names and limits of fields ----------------------------------------- */

#define PT_ID_MAX_LEN 64                /* clientId, tree id: A-Z a-z 0-9 - _ . : @ */
#define PT_NAME_MAX_LEN 128             /* room, event, channel, service, method, topic */
#define PT_SECRET_MAX_LEN 256
#define PT_MAX_JSON_DEPTH 32
#define PT_MAX_MLINE 1024               /* ICE candidates' m-line index */

gboolean pt_valid_id (const char *s);
gboolean pt_valid_name (const char *s);
/* FALSE if @text nests objects/arrays deeper than PT_MAX_JSON_DEPTH, or if a
 * string holds U+0000 (json-glib's C strings would silently cut it there, so
 * that e.g. a name with a control character after a \u0000 would pass).
 * Checked before parsing, so that a hostile message costs no deep recursion. */
gboolean pt_json_depth_ok (const char *text, gsize len);

/* ---- WebSocket close codes ---------------------------------------------- */

#define PT_CLOSE_GOING_AWAY 1001        /* server shutting down */
#define PT_CLOSE_UNSUPPORTED 1003       /* malformed binary frame */
#define PT_CLOSE_POLICY 1008            /* flood, hello timeout, stream protocol violation */
#define PT_CLOSE_TOO_BIG 1009           /* message over max-message-size */
#define PT_CLOSE_TAKEN_OVER 4001        /* another connection took this clientId */
#define PT_CLOSE_DEAD 4002              /* keepalive timeout */

/* ---- error codes ---------------------------------------------------------
 * Each wire code once as PT_ERR_*, then PT_ERROR_CODES: X (NAME, PT_ERR_NAME,
 * PEER_TREE_ERROR_* value), the one table of error codes and their one
 * mapping to libpeertree's #PeerTreeError. */

#define PT_ERR_BAD_JSON "bad-json"
#define PT_ERR_BAD_REQUEST "bad-request"
#define PT_ERR_UNKNOWN_TYPE "unknown-type"
#define PT_ERR_HELLO_REQUIRED "hello-required"
#define PT_ERR_ALREADY_HELLO "already-hello"
#define PT_ERR_UNSUPPORTED_VERSION "unsupported-version"
#define PT_ERR_INVALID_ID "invalid-id"
#define PT_ERR_DUPLICATE_CLIENT_ID "duplicate-client-id"
#define PT_ERR_TREE_NOT_FOUND "tree-not-found"
#define PT_ERR_TREE_EXISTS "tree-exists"
#define PT_ERR_NOT_MEMBER "not-member"
#define PT_ERR_IS_ROOT "is-root"
#define PT_ERR_RELAY_REFUSED "relay-refused"
#define PT_ERR_CLIENT_NOT_FOUND "client-not-found"
#define PT_ERR_LIMIT "limit"
#define PT_ERR_NOT_FOUND "not-found"
#define PT_ERR_REMOTE_ERROR "remote-error"
#define PT_ERR_CLIENT_DISCONNECTED "client-disconnected"
#define PT_ERR_TIMEOUT "timeout"
#define PT_ERR_SERVICE_NOT_FOUND "service-not-found"
#define PT_ERR_METHOD_NOT_FOUND "method-not-found"
#define PT_ERR_TOPIC_NOT_FOUND "topic-not-found"
#define PT_ERR_SERVICE_EXISTS "service-exists"
#define PT_ERR_TOPIC_EXISTS "topic-exists"
#define PT_ERR_NOT_PROVIDER "not-provider"
#define PT_ERR_SERVICE_ERROR "service-error"
#define PT_ERR_UNAUTHORIZED "unauthorized"
#define PT_ERR_FORBIDDEN "forbidden"

#define PT_ERROR_CODES(X) \
  X (BAD_JSON, PT_ERR_BAD_JSON, PEER_TREE_ERROR_BAD_REQUEST) \
  X (BAD_REQUEST, PT_ERR_BAD_REQUEST, PEER_TREE_ERROR_BAD_REQUEST) \
  X (UNKNOWN_TYPE, PT_ERR_UNKNOWN_TYPE, PEER_TREE_ERROR_BAD_REQUEST) \
  X (HELLO_REQUIRED, PT_ERR_HELLO_REQUIRED, PEER_TREE_ERROR_BAD_REQUEST) \
  X (ALREADY_HELLO, PT_ERR_ALREADY_HELLO, PEER_TREE_ERROR_BAD_REQUEST) \
  X (UNSUPPORTED_VERSION, PT_ERR_UNSUPPORTED_VERSION, PEER_TREE_ERROR_BAD_REQUEST) \
  X (INVALID_ID, PT_ERR_INVALID_ID, PEER_TREE_ERROR_INVALID_ID) \
  X (DUPLICATE_CLIENT_ID, PT_ERR_DUPLICATE_CLIENT_ID, PEER_TREE_ERROR_DUPLICATE_CLIENT_ID) \
  X (TREE_NOT_FOUND, PT_ERR_TREE_NOT_FOUND, PEER_TREE_ERROR_TREE_NOT_FOUND) \
  X (TREE_EXISTS, PT_ERR_TREE_EXISTS, PEER_TREE_ERROR_TREE_EXISTS) \
  X (NOT_MEMBER, PT_ERR_NOT_MEMBER, PEER_TREE_ERROR_NOT_MEMBER) \
  X (IS_ROOT, PT_ERR_IS_ROOT, PEER_TREE_ERROR_IS_ROOT) \
  X (RELAY_REFUSED, PT_ERR_RELAY_REFUSED, PEER_TREE_ERROR_RELAY_REFUSED) \
  X (CLIENT_NOT_FOUND, PT_ERR_CLIENT_NOT_FOUND, PEER_TREE_ERROR_NOT_FOUND) \
  X (LIMIT, PT_ERR_LIMIT, PEER_TREE_ERROR_LIMIT) \
  X (NOT_FOUND, PT_ERR_NOT_FOUND, PEER_TREE_ERROR_NOT_FOUND) \
  X (REMOTE_ERROR, PT_ERR_REMOTE_ERROR, PEER_TREE_ERROR_REMOTE) \
  X (CLIENT_DISCONNECTED, PT_ERR_CLIENT_DISCONNECTED, PEER_TREE_ERROR_DISCONNECTED) \
  X (TIMEOUT, PT_ERR_TIMEOUT, PEER_TREE_ERROR_TIMEOUT) \
  X (SERVICE_NOT_FOUND, PT_ERR_SERVICE_NOT_FOUND, PEER_TREE_ERROR_NOT_FOUND) \
  X (METHOD_NOT_FOUND, PT_ERR_METHOD_NOT_FOUND, PEER_TREE_ERROR_NOT_FOUND) \
  X (TOPIC_NOT_FOUND, PT_ERR_TOPIC_NOT_FOUND, PEER_TREE_ERROR_NOT_FOUND) \
  X (SERVICE_EXISTS, PT_ERR_SERVICE_EXISTS, PEER_TREE_ERROR_EXISTS) \
  X (TOPIC_EXISTS, PT_ERR_TOPIC_EXISTS, PEER_TREE_ERROR_EXISTS) \
  X (NOT_PROVIDER, PT_ERR_NOT_PROVIDER, PEER_TREE_ERROR_NOT_PERMITTED) \
  X (SERVICE_ERROR, PT_ERR_SERVICE_ERROR, PEER_TREE_ERROR_REMOTE) \
  X (UNAUTHORIZED, PT_ERR_UNAUTHORIZED, PEER_TREE_ERROR_UNAUTHORIZED) \
  X (FORBIDDEN, PT_ERR_FORBIDDEN, PEER_TREE_ERROR_FORBIDDEN)

/* The #PeerTreeError (as an int: this module sits below libpeertree) of a
 * wire error code; PEER_TREE_ERROR_FAILED (0) for an unknown or NULL code. */
int pt_error_code_to_peer_tree_error (const char *code);
/* Every wire error code, NULL-terminated, in the table's order. */
const char *const *pt_error_codes (void);

/* ---- requests: trees ---------------------------------------------------- */

#define PT_REQ_HELLO "hello"
#define PT_REQ_CREATE "create"
#define PT_REQ_REJOIN "rejoin"
#define PT_REQ_JOIN "join"
#define PT_REQ_RECONNECT_UPSTREAM "reconnect-upstream"
#define PT_REQ_LEAVE "leave"
#define PT_REQ_SIGNAL "signal"
#define PT_REQ_CAPACITY "capacity"
#define PT_REQ_REPORT_RELAY "report-relay"

#define PT_F_VERSION "version"
#define PT_F_CLIENT_ID "clientId"
#define PT_F_SECRET "secret"
#define PT_F_TOKEN "token"              /* hello: a JWT, when the server has an auth key */
#define PT_F_LEAF "leaf"                /* join: take no children */
/* Capacity-aware placement (join, rejoin, capacity): what a member declares
 * it can relay, and (create, rejoin as source, capacity from the source)
 * the stream's bitrate, which turns upload budgets into child counts. */
#define PT_F_MAX_CHILDREN "maxChildren"         /* 0: a leaf; absent: k applies */
#define PT_F_MAX_UPLOAD_KBPS "maxUploadKbps"    /* 0 or absent: unknown */
#define PT_F_BITRATE_KBPS "bitrateKbps"         /* 0 or absent: unknown */
#define PT_F_OVERLOADED "overloaded"            /* capacity: shed my newest child */
#define PT_F_MOVED "moved"                      /* capacity reply: the child shed */
#define PT_MAX_DECLARED_CHILDREN 1000
#define PT_MAX_UPLOAD_KBPS 100000000            /* 100 Gbit/s */
#define PT_MAX_BITRATE_KBPS 10000000            /* 10 Gbit/s */
#define PT_OVERLOAD_INTERVAL 5                  /* s: one overload report per member and tree */
#define PT_F_K "k"
#define PT_F_K1 "k1"
#define PT_F_MAX_MESSAGE_SIZE "maxMessageSize"
/* hello reply: the ICE servers to use (when the server has --stun/--turn),
 * each {"urls": "stun:HOST:PORT" | "turn:HOST:PORT[?transport=udp|tcp]",
 * "username": …, "credential": …} (TURN: short-lived TURN REST credentials) */
#define PT_F_ICE_SERVERS "iceServers"
#define PT_F_URLS "urls"
#define PT_F_USERNAME "username"
#define PT_F_CREDENTIAL "credential"
#define PT_F_TREE_ID "treeId"
#define PT_F_RECLAIMED "reclaimed"
#define PT_F_SOURCE "source"
#define PT_F_PARENT "parent"
#define PT_F_DEPTH "depth"
#define PT_F_PENDING "pending"
#define PT_F_CHILDREN "children"         /* rejoin: the children a member reports */
#define PT_MAX_REPORTED_CHILDREN 256
#define PT_F_TO "to"
#define PT_F_FROM "from"
#define PT_F_DATA "data"
#define PT_F_SDP "sdp"                  /* in data, and the SDP text inside it */
#define PT_F_SDP_TYPE "type"
#define PT_SDP_OFFER "offer"
#define PT_SDP_ANSWER "answer"
#define PT_F_ICE "ice"
#define PT_F_MLINE "mline"
#define PT_F_CANDIDATE "candidate"
/* create, rejoin (source): the source's Ed25519 public key for the data it
 * signs (base64 of the 32 raw bytes); given back in the placement replies
 * (join, reconnect-upstream, rejoin) */
#define PT_F_DATA_KEY "dataKey"
#define PT_DATA_KEY_LEN 32
/* report-relay: the parent that forwarded data failing the source's
 * signature (forged) or already delivered (replayed) */
#define PT_F_RELAY "relay"
#define PT_RELAY_FORGED "forged"
#define PT_RELAY_REPLAYED "replayed"

/* report: a member's figures of its link from its parent, and its children,
 * for GET /dashboard and /metrics; at most one per tree every
 * PT_REPORT_MIN_INTERVAL_MS (else limit). Every figure is optional (a source
 * has no parent link; a new link has no RTT yet). */
#define PT_REQ_REPORT "report"
#define PT_F_CHILD_COUNT "childCount"           /* links to children up, 0..PT_MAX_REPORTED_CHILDREN */
/* and PT_F_BITRATE_KBPS: received from the parent, 0..PT_REPORT_MAX_KBPS */
#define PT_F_LOSS_PERCENT "lossPercent"         /* packets lost on that link, 0..100 */
#define PT_F_RTT_MS "rttMs"                     /* round trip to the parent, 0..PT_REPORT_MAX_RTT_MS */
#define PT_F_FRAMES_PER_SECOND "framesPerSecond" /* video frames out, 0..PT_REPORT_MAX_FPS */
#define PT_REPORT_MIN_INTERVAL_MS 1000
#define PT_REPORT_MAX_KBPS 10000000             /* 10 Gbit/s */
#define PT_REPORT_MAX_RTT_MS 60000
#define PT_REPORT_MAX_FPS 1000

/* A report's figures; -1 where absent. */
typedef struct {
  gint64 child_count;
  gint64 bitrate_kbps;
  double loss_percent;
  gint64 rtt_ms;
  double frames_per_second;
} PtReport;

#define PT_REPORT_INIT { -1, -1, -1, -1, -1 }

/* ---- events: trees ------------------------------------------------------ */

#define PT_EV_SOURCE_LOST "source-lost"
#define PT_EV_PLACED "placed"
#define PT_EV_SIGNAL "signal"
#define PT_EV_UPSTREAM "upstream"
#define PT_EV_DOWNSTREAM_ADDED "downstream-added"
#define PT_EV_DOWNSTREAM_REMOVED "downstream-removed"
#define PT_EV_TREE_CLOSED "tree-closed"
#define PT_EV_DATA_KEY "data-key"       /* a returning source's new dataKey */
#define PT_F_GRACE "grace"
#define PT_F_CHILD "child"
#define PT_F_REASON "reason"

/* ---- reasons (upstream, downstream-removed, tree-closed) ----------------- */

/* upstream */
#define PT_REASON_PARENT_LEFT "parent-left"
#define PT_REASON_SOURCE_RETURNED "source-returned"
#define PT_REASON_REBUILT "rebuilt"
/* upstream and downstream-removed: moved away from an overloaded parent */
#define PT_REASON_SHED "shed"
#define PT_REASON_RELAY_DISTRUSTED "relay-distrusted"  /* also downstream-removed */
/* downstream-removed */
#define PT_REASON_LEFT "left"
#define PT_REASON_DISCONNECTED "disconnected"
#define PT_REASON_REJOINED "rejoined"
#define PT_REASON_RECONNECTED "reconnected"
/* tree-closed */
#define PT_REASON_SOURCE_LEFT "source-left"
#define PT_REASON_SOURCE_DISCONNECTED "source-disconnected"
#define PT_REASON_SOURCE_TIMEOUT "source-timeout"
#define PT_REASON_SOURCE_NOT_BACK "source-not-back"
#define PT_REASON_NO_SLOT "no-slot"

/* ---- requests: messages between clients --------------------------------- */

#define PT_REQ_LIST_CLIENTS "list-clients"
#define PT_REQ_IS_CONNECTED "is-connected"
#define PT_REQ_EMIT "emit"
#define PT_REQ_REPLY PT_TYPE_REPLY
#define PT_REQ_ADD_TARGET "add-target"
#define PT_REQ_ROOM_JOIN "room-join"
#define PT_REQ_ROOM_LEAVE "room-leave"
#define PT_REQ_ROOM_EMIT "room-emit"
#define PT_REQ_LIST_ROOMS "list-rooms"
#define PT_REQ_STREAM_OPEN "stream-open"
#define PT_REQ_SERVICE_PROVIDE "service-provide"
#define PT_REQ_SERVICE_WITHDRAW "service-withdraw"
#define PT_REQ_SERVICE_CALL "service-call"
#define PT_REQ_TOPIC_CREATE "topic-create"
#define PT_REQ_TOPIC_DESTROY "topic-destroy"
#define PT_REQ_TOPIC_PUBLISH "topic-publish"
#define PT_REQ_TOPIC_SUBSCRIBE "topic-subscribe"
#define PT_REQ_TOPIC_UNSUBSCRIBE "topic-unsubscribe"

#define PT_F_PREFIX "prefix"
#define PT_F_LIMIT "limit"
#define PT_F_CLIENTS "clients"
#define PT_F_MORE "more"
#define PT_F_CONNECTED "connected"
#define PT_F_NAME "name"                /* an emitted event's name, in a message event */
#define PT_F_ARGS "args"
#define PT_F_ACK "ack"
#define PT_F_ACK_ID "ackId"
#define PT_F_TIMEOUT "timeout"
#define PT_F_VALUE "value"
#define PT_F_TARGET "target"
#define PT_F_ROOM "room"
#define PT_F_ROOMS "rooms"
#define PT_F_DELIVERED "delivered"
#define PT_F_CHANNEL "channel"
#define PT_F_STREAM_ID "streamId"
#define PT_F_WINDOW "window"
#define PT_F_SERVICE "service"
#define PT_F_METHODS "methods"
#define PT_F_METHOD "method"
#define PT_F_TOPIC "topic"

/* ---- events: messages between clients ------------------------------------ */

#define PT_EV_MESSAGE "message"
#define PT_EV_TARGET_REQUEST "target-request"
#define PT_EV_TARGET_DISCONNECTED "target-disconnected"
#define PT_EV_STREAM_REQUEST "stream-request"
#define PT_EV_SERVICE_CALL "service-call"
#define PT_EV_TOPIC "topic"
#define PT_EV_TOPIC_DESTROYED "topic-destroyed"

/* ---- stream frames (binary WebSocket frames) ---------------------------- */

#define PT_FRAME_HEADER_LEN 5           /* stream id (4 bytes, big-endian), op */
#define PT_MAX_FRAME_PAYLOAD (60 * 1024)

typedef enum {
  PT_OP_DATA = 0,
  PT_OP_CREDIT = 1,
  PT_OP_END = 2,
  PT_OP_RESET = 3,
} PtFrameOp;

/* Writes the 5-byte header of a frame into @out. */
void pt_frame_header_write (guint8 out[PT_FRAME_HEADER_LEN], guint32 stream_id, PtFrameOp op);
/* Reads a frame's header; FALSE if @len is shorter than a header. */
gboolean pt_frame_header_read (const guint8 *data, gsize len, guint32 *stream_id, guint8 *op);

/* ---- the server's own service ------------------------------------------ */

#define PT_SERVICE_PEERTREE "peertree"
#define PT_METHOD_LIST_TREES "list-trees"
#define PT_METHOD_TREE "tree"

/* ---- GET /status (plain HTTP on the same port) -------------------------- */

#define PT_F_TREES "trees"
#define PT_F_ROOT "root"
#define PT_F_SIZE "size"
#define PT_F_MEMBERS "members"
/* and PT_F_CLIENTS, PT_F_ID, PT_F_K, PT_F_K1, PT_F_PARENT, PT_F_DEPTH, PT_F_CHILDREN */

/* ---- typed JSON getters ------------------------------------------------- */

/* Why a message was refused: a wire error code (PT_ERR_*) and a text. */
typedef struct {
  const char *code;
  char *message;
} PtFault;

void pt_fault_clear (PtFault *f);
/* Sets @f and returns FALSE, so that a check can `return pt_fault_set (...)`. */
G_GNUC_PRINTF (3, 4) gboolean pt_fault_set (PtFault *f, const char *code, const char *fmt, ...);

/* Each reads member @name of @obj. Absent (or null) is fine unless
 * @required; present with the wrong type or out of range fails with
 * bad-request (pt_get_id: invalid-id; pt_get_name: bad-request) and @f set.
 * Strings point into @obj. */
gboolean pt_get_string (JsonObject *obj, const char *name, gboolean required, const char **out,
    PtFault *f);
gboolean pt_get_id (JsonObject *obj, const char *name, gboolean required, const char **out,
    PtFault *f);
gboolean pt_get_name (JsonObject *obj, const char *name, gboolean required, const char **out,
    PtFault *f);
gboolean pt_get_uint (JsonObject *obj, const char *name, gboolean required, gint64 max,
    gint64 *out, PtFault *f);
gboolean pt_get_bool (JsonObject *obj, const char *name, gboolean required, gboolean *out,
    PtFault *f);
/* A JSON number (integer or not) between @min and @max; absent: *@out = -1. */
gboolean pt_get_number (JsonObject *obj, const char *name, gboolean required, double min,
    double max, double *out, PtFault *f);
gboolean pt_get_object (JsonObject *obj, const char *name, gboolean required, JsonObject **out,
    PtFault *f);
gboolean pt_get_array (JsonObject *obj, const char *name, gboolean required, JsonArray **out,
    PtFault *f);

/* A report request's figures, each checked for type and range (bad-request). */
gboolean pt_report_read (JsonObject *msg, PtReport *out, PtFault *f);
/* Sets the figures of @r that are not -1 on @obj. */
void pt_report_write (const PtReport *r, JsonObject *obj);

/* Lenient readers for what a client receives: the value, or the default
 * when absent or of another type. */
const char *pt_str (JsonObject *obj, const char *name);
gint64 pt_int (JsonObject *obj, const char *name, gint64 dflt);
gboolean pt_bool (JsonObject *obj, const char *name);
/* The member if it is an object, else NULL. */
JsonObject *pt_obj (JsonObject *obj, const char *name);
/* FALSE (and @out untouched) unless the member is an integer in 0..G_MAXUINT. */
gboolean pt_uint (JsonObject *obj, const char *name, guint *out);

/* ---- the message table -------------------------------------------------- */

typedef enum {
  PT_KIND_REQUEST,
  PT_KIND_EVENT,
} PtSpecKind;

typedef enum {
  PT_FIELD_STRING,
  PT_FIELD_ID,
  PT_FIELD_NAME,
  PT_FIELD_UINT,
  PT_FIELD_BOOL,
  PT_FIELD_NUMBER,              /* integer or not, finite */
  PT_FIELD_OBJECT,
  PT_FIELD_ARRAY,
  PT_FIELD_ANY,
} PtFieldType;

typedef struct {
  const char *name;
  PtFieldType type;
  gboolean required;
} PtFieldSpec;

#define PT_MAX_FIELDS 12

typedef struct {
  PtSpecKind kind;
  const char *name;             /* request type or event name */
  PtFieldSpec fields[PT_MAX_FIELDS];  /* up to the first with name NULL */
} PtMessageSpec;

/* Every request and event of docs/protocol.md, in its order; NULL-terminated
 * by an entry with name NULL. Replies are checked by pt_message_check's
 * envelope rules (id, ok, then result or error). */
const PtMessageSpec *pt_message_specs (void);
const PtMessageSpec *pt_message_spec_find (PtSpecKind kind, const char *name);

/* Checks one message as it travels (request, reply or event) against the
 * table: its envelope, its type or event name, and the presence and type of
 * every field the table lists. */
gboolean pt_message_check (JsonObject *msg, PtFault *f);

/* A new request {"type": @type, "id": @id} or event {"type": "event",
 * "event": @event}, to which the caller adds the fields. */
JsonObject *pt_msg_request_new (const char *type, gint64 id);
JsonObject *pt_msg_event_new (const char *event);

G_END_DECLS
