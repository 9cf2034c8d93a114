/* pt-protocol — see pt-protocol.h.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "pt-protocol.h"

#include <string.h>

#include "peertree/peertree-error.h"

/* ---- names -------------------------------------------------------------- */

gboolean
pt_valid_id (const char *s)
{
  gsize n = s ? strlen (s) : 0;

  if (n == 0 || n > PT_ID_MAX_LEN)
    return FALSE;
  for (gsize i = 0; i < n; i++) {
    char c = s[i];

    if (!(g_ascii_isalnum (c) || c == '-' || c == '_' || c == '.' || c == ':' || c == '@'))
      return FALSE;
  }
  return TRUE;
}

gboolean
pt_valid_name (const char *s)
{
  gsize n = s ? strlen (s) : 0;

  if (n == 0 || n > PT_NAME_MAX_LEN || !g_utf8_validate (s, n, NULL))
    return FALSE;
  for (const char *p = s; *p; p = g_utf8_next_char (p))
    if (g_unichar_iscntrl (g_utf8_get_char (p)))
      return FALSE;
  return TRUE;
}

gboolean
pt_json_depth_ok (const char *text, gsize len)
{
  int depth = 0;
  gboolean in_string = FALSE;

  for (gsize i = 0; i < len; i++) {
    char ch = text[i];

    if (in_string) {
      if (ch == '\\') {
        /* \u0000: a NUL json-glib would silently cut the string at */
        if (i + 5 < len && text[i + 1] == 'u' && memcmp (text + i + 2, "0000", 4) == 0)
          return FALSE;
        i++;
      } else if (ch == '"')
        in_string = FALSE;
    } else if (ch == '"') {
      in_string = TRUE;
    } else if (ch == '{' || ch == '[') {
      if (++depth > PT_MAX_JSON_DEPTH)
        return FALSE;
    } else if ((ch == '}' || ch == ']') && depth > 0) {
      depth--;
    }
  }
  return TRUE;
}

/* ---- error codes -------------------------------------------------------- */

static const struct {
  const char *code;
  int error;
} error_table[] = {
#define PT_ERROR_ROW(name, code, error) { code, error },
  PT_ERROR_CODES (PT_ERROR_ROW)
#undef PT_ERROR_ROW
};

static const char *const error_code_list[] = {
#define PT_ERROR_NAME(name, code, error) code,
  PT_ERROR_CODES (PT_ERROR_NAME)
#undef PT_ERROR_NAME
  NULL
};

int
pt_error_code_to_peer_tree_error (const char *code)
{
  for (gsize i = 0; code && i < G_N_ELEMENTS (error_table); i++)
    if (strcmp (error_table[i].code, code) == 0)
      return error_table[i].error;
  return PEER_TREE_ERROR_FAILED;
}

const char *const *
pt_error_codes (void)
{
  return error_code_list;
}

/* ---- stream frames ------------------------------------------------------ */

void
pt_frame_header_write (guint8 out[PT_FRAME_HEADER_LEN], guint32 stream_id, PtFrameOp op)
{
  out[0] = stream_id >> 24;
  out[1] = stream_id >> 16;
  out[2] = stream_id >> 8;
  out[3] = stream_id;
  out[4] = op;
}

gboolean
pt_frame_header_read (const guint8 *data, gsize len, guint32 *stream_id, guint8 *op)
{
  if (len < PT_FRAME_HEADER_LEN)
    return FALSE;
  *stream_id = ((guint32) data[0] << 24) | ((guint32) data[1] << 16) |
      ((guint32) data[2] << 8) | data[3];
  *op = data[4];
  return TRUE;
}

/* ---- typed getters ------------------------------------------------------ */

void
pt_fault_clear (PtFault *f)
{
  g_clear_pointer (&f->message, g_free);
  f->code = NULL;
}

gboolean
pt_fault_set (PtFault *f, const char *code, const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  g_free (f->message);
  f->code = code;
  f->message = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  return FALSE;
}

static gboolean
holds_value (JsonNode *node, GType type)
{
  return JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == type;
}

/* What a member must hold: a JSON value of @type (G_TYPE_INVALID: an object
 * or an array, by @node_type), and how a refusal names it. */
typedef struct {
  JsonNodeType node_type;
  GType type;
  const char *what;
} Kind;

static const Kind STRING = { JSON_NODE_VALUE, G_TYPE_STRING, "a string" };
static const Kind INTEGER = { JSON_NODE_VALUE, G_TYPE_INT64, "an integer" };
static const Kind BOOLEAN = { JSON_NODE_VALUE, G_TYPE_BOOLEAN, "true or false" };
static const Kind OBJECT = { JSON_NODE_OBJECT, G_TYPE_INVALID, "an object" };
static const Kind ARRAY = { JSON_NODE_ARRAY, G_TYPE_INVALID, "an array" };

/* *@out: the member, or NULL when absent or null (fine unless @required);
 * FALSE with @f set when it is missing but required, or of another kind. */
static gboolean
member (JsonObject *obj, const char *name, gboolean required, const Kind *kind,
    JsonNode **out, PtFault *f)
{
  JsonNode *node = json_object_get_member (obj, name);

  *out = NULL;
  if (!node || JSON_NODE_HOLDS_NULL (node)) {
    if (required)
      return pt_fault_set (f, PT_ERR_BAD_REQUEST, "missing field \"%s\"", name);
    return TRUE;
  }
  if (JSON_NODE_TYPE (node) != kind->node_type ||
      (kind->type != G_TYPE_INVALID && !holds_value (node, kind->type)))
    return pt_fault_set (f, PT_ERR_BAD_REQUEST, "field \"%s\" must be %s", name, kind->what);
  *out = node;
  return TRUE;
}

gboolean
pt_get_string (JsonObject *obj, const char *name, gboolean required, const char **out,
    PtFault *f)
{
  JsonNode *node;

  if (!member (obj, name, required, &STRING, &node, f))
    return FALSE;
  *out = node ? json_node_get_string (node) : NULL;
  return TRUE;
}

gboolean
pt_get_id (JsonObject *obj, const char *name, gboolean required, const char **out, PtFault *f)
{
  if (!pt_get_string (obj, name, required, out, f))
    return FALSE;
  if (*out && !pt_valid_id (*out))
    return pt_fault_set (f, PT_ERR_INVALID_ID,
        "field \"%s\" must be 1 to %d characters of A-Z a-z 0-9 - _ . : @", name, PT_ID_MAX_LEN);
  return TRUE;
}

gboolean
pt_get_name (JsonObject *obj, const char *name, gboolean required, const char **out,
    PtFault *f)
{
  if (!pt_get_string (obj, name, required, out, f))
    return FALSE;
  if (*out && !pt_valid_name (*out))
    return pt_fault_set (f, PT_ERR_BAD_REQUEST,
        "field \"%s\" must be 1 to %d bytes of UTF-8 without control characters", name,
        PT_NAME_MAX_LEN);
  return TRUE;
}

gboolean
pt_get_uint (JsonObject *obj, const char *name, gboolean required, gint64 max, gint64 *out,
    PtFault *f)
{
  JsonNode *node;
  gint64 v;

  *out = 0;
  if (!member (obj, name, required, &INTEGER, &node, f))
    return FALSE;
  if (node == NULL)
    return TRUE;
  v = json_node_get_int (node);
  if (v < 0 || v > max)
    return pt_fault_set (f, PT_ERR_BAD_REQUEST,
        "field \"%s\" must be between 0 and %" G_GINT64_FORMAT, name, max);
  *out = v;
  return TRUE;
}

gboolean
pt_get_bool (JsonObject *obj, const char *name, gboolean required, gboolean *out, PtFault *f)
{
  JsonNode *node;

  if (!member (obj, name, required, &BOOLEAN, &node, f))
    return FALSE;
  *out = node ? json_node_get_boolean (node) : FALSE;
  return TRUE;
}

gboolean
pt_get_number (JsonObject *obj, const char *name, gboolean required, double min, double max,
    double *out, PtFault *f)
{
  JsonNode *node = json_object_get_member (obj, name);
  double v;

  *out = -1;
  if (!node || JSON_NODE_HOLDS_NULL (node)) {
    if (required)
      return pt_fault_set (f, PT_ERR_BAD_REQUEST, "missing field \"%s\"", name);
    return TRUE;
  }
  if (holds_value (node, G_TYPE_INT64))
    v = (double) json_node_get_int (node);
  else if (holds_value (node, G_TYPE_DOUBLE))
    v = json_node_get_double (node);
  else
    return pt_fault_set (f, PT_ERR_BAD_REQUEST, "field \"%s\" must be a number", name);
  /* (NaN fails both comparisons: refused) */
  if (!(v >= min && v <= max))
    return pt_fault_set (f, PT_ERR_BAD_REQUEST, "field \"%s\" must be between %g and %g", name,
        min, max);
  *out = v;
  return TRUE;
}

gboolean
pt_get_object (JsonObject *obj, const char *name, gboolean required, JsonObject **out,
    PtFault *f)
{
  JsonNode *node;

  if (!member (obj, name, required, &OBJECT, &node, f))
    return FALSE;
  *out = node ? json_node_get_object (node) : NULL;
  return TRUE;
}

gboolean
pt_get_array (JsonObject *obj, const char *name, gboolean required, JsonArray **out,
    PtFault *f)
{
  JsonNode *node;

  if (!member (obj, name, required, &ARRAY, &node, f))
    return FALSE;
  *out = node ? json_node_get_array (node) : NULL;
  return TRUE;
}

/* an optional integer: -1 when absent */
static gboolean
report_uint (JsonObject *msg, const char *name, gint64 max, gint64 *out, PtFault *f)
{
  JsonNode *node = json_object_get_member (msg, name);

  *out = -1;
  if (!node || JSON_NODE_HOLDS_NULL (node))
    return TRUE;
  return pt_get_uint (msg, name, TRUE, max, out, f);
}

gboolean
pt_report_read (JsonObject *msg, PtReport *out, PtFault *f)
{
  return report_uint (msg, PT_F_CHILD_COUNT, PT_MAX_REPORTED_CHILDREN, &out->child_count, f) &&
      report_uint (msg, PT_F_BITRATE_KBPS, PT_REPORT_MAX_KBPS, &out->bitrate_kbps, f) &&
      pt_get_number (msg, PT_F_LOSS_PERCENT, FALSE, 0, 100, &out->loss_percent, f) &&
      report_uint (msg, PT_F_RTT_MS, PT_REPORT_MAX_RTT_MS, &out->rtt_ms, f) &&
      pt_get_number (msg, PT_F_FRAMES_PER_SECOND, FALSE, 0, PT_REPORT_MAX_FPS,
          &out->frames_per_second, f);
}

void
pt_report_write (const PtReport *r, JsonObject *obj)
{
  if (r->child_count >= 0)
    json_object_set_int_member (obj, PT_F_CHILD_COUNT, r->child_count);
  if (r->bitrate_kbps >= 0)
    json_object_set_int_member (obj, PT_F_BITRATE_KBPS, r->bitrate_kbps);
  if (r->loss_percent >= 0)
    json_object_set_double_member (obj, PT_F_LOSS_PERCENT, r->loss_percent);
  if (r->rtt_ms >= 0)
    json_object_set_int_member (obj, PT_F_RTT_MS, r->rtt_ms);
  if (r->frames_per_second >= 0)
    json_object_set_double_member (obj, PT_F_FRAMES_PER_SECOND, r->frames_per_second);
}

const char *
pt_str (JsonObject *obj, const char *name)
{
  JsonNode *n = obj ? json_object_get_member (obj, name) : NULL;

  return n && holds_value (n, G_TYPE_STRING) ? json_node_get_string (n) : NULL;
}

gint64
pt_int (JsonObject *obj, const char *name, gint64 dflt)
{
  JsonNode *n = obj ? json_object_get_member (obj, name) : NULL;

  return n && holds_value (n, G_TYPE_INT64) ? json_node_get_int (n) : dflt;
}

gboolean
pt_bool (JsonObject *obj, const char *name)
{
  JsonNode *n = obj ? json_object_get_member (obj, name) : NULL;

  return n && holds_value (n, G_TYPE_BOOLEAN) && json_node_get_boolean (n);
}

JsonObject *
pt_obj (JsonObject *obj, const char *name)
{
  JsonNode *n = obj ? json_object_get_member (obj, name) : NULL;

  return n && JSON_NODE_HOLDS_OBJECT (n) ? json_node_get_object (n) : NULL;
}

gboolean
pt_uint (JsonObject *obj, const char *name, guint *out)
{
  gint64 v = pt_int (obj, name, -1);

  if (v < 0 || v > G_MAXUINT)
    return FALSE;
  *out = (guint) v;
  return TRUE;
}

/* ---- the message table -------------------------------------------------- */

#define REQ(name, ...) { PT_KIND_REQUEST, name, { __VA_ARGS__ } }
#define EV(name, ...) { PT_KIND_EVENT, name, { __VA_ARGS__ } }
#define R(field, type) { field, PT_FIELD_##type, TRUE }
#define O(field, type) { field, PT_FIELD_##type, FALSE }

static const PtMessageSpec specs[] = {
  /* trees */
  REQ (PT_REQ_HELLO, R (PT_F_VERSION, UINT), O (PT_F_CLIENT_ID, ID), O (PT_F_SECRET, STRING),
      O (PT_F_TOKEN, STRING)),
  REQ (PT_REQ_CREATE, O (PT_F_TREE_ID, ID), O (PT_F_K, UINT), O (PT_F_K1, UINT),
      O (PT_F_SECRET, STRING), O (PT_F_BITRATE_KBPS, UINT), O (PT_F_DATA_KEY, STRING)),
  EV (PT_EV_SOURCE_LOST, R (PT_F_TREE_ID, ID), R (PT_F_GRACE, UINT)),
  /* parent: required unless source is true (the handler checks) */
  REQ (PT_REQ_REJOIN, R (PT_F_TREE_ID, ID), O (PT_F_PARENT, ID), O (PT_F_SOURCE, BOOL),
      O (PT_F_K, UINT), O (PT_F_K1, UINT), O (PT_F_SECRET, STRING), O (PT_F_CHILDREN, ARRAY),
      O (PT_F_MAX_CHILDREN, UINT), O (PT_F_MAX_UPLOAD_KBPS, UINT), O (PT_F_BITRATE_KBPS, UINT),
      O (PT_F_DATA_KEY, STRING)),
  EV (PT_EV_PLACED, R (PT_F_TREE_ID, ID), R (PT_F_PARENT, ID), R (PT_F_DEPTH, UINT)),
  REQ (PT_REQ_JOIN, R (PT_F_TREE_ID, ID), O (PT_F_LEAF, BOOL), O (PT_F_MAX_CHILDREN, UINT),
      O (PT_F_MAX_UPLOAD_KBPS, UINT)),
  REQ (PT_REQ_RECONNECT_UPSTREAM, R (PT_F_TREE_ID, ID)),
  REQ (PT_REQ_LEAVE, R (PT_F_TREE_ID, ID)),
  REQ (PT_REQ_SIGNAL, R (PT_F_TREE_ID, ID), R (PT_F_TO, ID), R (PT_F_DATA, OBJECT)),
  /* ranges: the handler checks (pt_report_read) */
  REQ (PT_REQ_REPORT, R (PT_F_TREE_ID, ID), O (PT_F_CHILD_COUNT, UINT), O (PT_F_BITRATE_KBPS, UINT),
      O (PT_F_LOSS_PERCENT, NUMBER), O (PT_F_RTT_MS, UINT), O (PT_F_FRAMES_PER_SECOND, NUMBER)),
  REQ (PT_REQ_CAPACITY, R (PT_F_TREE_ID, ID), O (PT_F_MAX_CHILDREN, UINT),
      O (PT_F_MAX_UPLOAD_KBPS, UINT), O (PT_F_BITRATE_KBPS, UINT), O (PT_F_OVERLOADED, BOOL)),
  REQ (PT_REQ_REPORT_RELAY, R (PT_F_TREE_ID, ID), R (PT_F_RELAY, ID), R (PT_F_REASON, STRING)),
  EV (PT_EV_SIGNAL, R (PT_F_TREE_ID, ID), R (PT_F_FROM, ID), R (PT_F_DATA, OBJECT)),
  EV (PT_EV_UPSTREAM, R (PT_F_TREE_ID, ID), R (PT_F_PARENT, ID), R (PT_F_DEPTH, UINT),
      R (PT_F_REASON, STRING)),
  EV (PT_EV_DOWNSTREAM_ADDED, R (PT_F_TREE_ID, ID), R (PT_F_CHILD, ID)),
  EV (PT_EV_DOWNSTREAM_REMOVED, R (PT_F_TREE_ID, ID), R (PT_F_CHILD, ID),
      R (PT_F_REASON, STRING)),
  EV (PT_EV_TREE_CLOSED, R (PT_F_TREE_ID, ID), R (PT_F_REASON, STRING)),
  EV (PT_EV_DATA_KEY, R (PT_F_TREE_ID, ID), R (PT_F_DATA_KEY, STRING)),
  /* messages between clients */
  REQ (PT_REQ_LIST_CLIENTS, O (PT_F_PREFIX, STRING), O (PT_F_LIMIT, UINT)),
  REQ (PT_REQ_IS_CONNECTED, R (PT_F_CLIENT_ID, ID)),
  REQ (PT_REQ_EMIT, R (PT_F_TO, ID), R (PT_F_EVENT, NAME), O (PT_F_ARGS, ARRAY),
      O (PT_F_ACK, BOOL), O (PT_F_TIMEOUT, UINT)),
  EV (PT_EV_MESSAGE, R (PT_F_FROM, ID), R (PT_F_NAME, NAME), R (PT_F_ARGS, ARRAY),
      O (PT_F_ACK_ID, UINT), O (PT_F_ROOM, NAME)),
  /* ok absent is a refusal */
  REQ (PT_REQ_REPLY, R (PT_F_ACK_ID, UINT), O (PT_F_OK, BOOL), O (PT_F_VALUE, ANY),
      O (PT_F_ERROR, OBJECT)),
  REQ (PT_REQ_ADD_TARGET, R (PT_F_TARGET, ID), O (PT_F_TIMEOUT, UINT)),
  EV (PT_EV_TARGET_REQUEST, R (PT_F_FROM, ID), R (PT_F_ACK_ID, UINT)),
  EV (PT_EV_TARGET_DISCONNECTED, R (PT_F_CLIENT_ID, ID)),
  REQ (PT_REQ_ROOM_JOIN, R (PT_F_ROOM, NAME)),
  REQ (PT_REQ_ROOM_LEAVE, R (PT_F_ROOM, NAME)),
  REQ (PT_REQ_ROOM_EMIT, R (PT_F_ROOM, NAME), R (PT_F_EVENT, NAME), O (PT_F_ARGS, ARRAY)),
  REQ (PT_REQ_LIST_ROOMS, O (PT_F_CLIENT_ID, ID)),
  REQ (PT_REQ_STREAM_OPEN, R (PT_F_TO, ID), R (PT_F_CHANNEL, NAME), O (PT_F_ARGS, ARRAY),
      O (PT_F_TIMEOUT, UINT)),
  EV (PT_EV_STREAM_REQUEST, R (PT_F_FROM, ID), R (PT_F_STREAM_ID, UINT),
      R (PT_F_CHANNEL, NAME), R (PT_F_ARGS, ARRAY), R (PT_F_WINDOW, UINT),
      R (PT_F_ACK_ID, UINT)),
  REQ (PT_REQ_SERVICE_PROVIDE, R (PT_F_SERVICE, NAME), O (PT_F_METHODS, ARRAY)),
  REQ (PT_REQ_SERVICE_WITHDRAW, R (PT_F_SERVICE, NAME)),
  REQ (PT_REQ_SERVICE_CALL, R (PT_F_SERVICE, NAME), R (PT_F_METHOD, NAME),
      O (PT_F_ARGS, ARRAY), O (PT_F_TIMEOUT, UINT)),
  EV (PT_EV_SERVICE_CALL, R (PT_F_FROM, ID), R (PT_F_SERVICE, NAME), R (PT_F_METHOD, NAME),
      R (PT_F_ARGS, ARRAY), R (PT_F_ACK_ID, UINT)),
  REQ (PT_REQ_TOPIC_CREATE, R (PT_F_SERVICE, NAME), R (PT_F_TOPIC, NAME)),
  REQ (PT_REQ_TOPIC_DESTROY, R (PT_F_SERVICE, NAME), R (PT_F_TOPIC, NAME)),
  REQ (PT_REQ_TOPIC_PUBLISH, R (PT_F_SERVICE, NAME), R (PT_F_TOPIC, NAME),
      O (PT_F_ARGS, ARRAY)),
  REQ (PT_REQ_TOPIC_SUBSCRIBE, R (PT_F_SERVICE, NAME), R (PT_F_TOPIC, NAME)),
  REQ (PT_REQ_TOPIC_UNSUBSCRIBE, R (PT_F_SERVICE, NAME), R (PT_F_TOPIC, NAME)),
  EV (PT_EV_TOPIC, R (PT_F_SERVICE, NAME), R (PT_F_TOPIC, NAME), R (PT_F_ARGS, ARRAY)),
  EV (PT_EV_TOPIC_DESTROYED, R (PT_F_SERVICE, NAME), R (PT_F_TOPIC, NAME)),
  { PT_KIND_REQUEST, NULL, { { NULL } } },
};

#undef REQ
#undef EV
#undef R
#undef O

const PtMessageSpec *
pt_message_specs (void)
{
  return specs;
}

const PtMessageSpec *
pt_message_spec_find (PtSpecKind kind, const char *name)
{
  for (const PtMessageSpec *s = specs; name && s->name; s++)
    if (s->kind == kind && strcmp (s->name, name) == 0)
      return s;
  return NULL;
}

static gboolean
check_field (JsonObject *msg, const PtFieldSpec *fs, PtFault *f)
{
  const char *s;
  gint64 i;
  gboolean b;
  double d;
  JsonObject *o;
  JsonArray *a;

  switch (fs->type) {
    case PT_FIELD_STRING:
      return pt_get_string (msg, fs->name, fs->required, &s, f);
    case PT_FIELD_ID:
      return pt_get_id (msg, fs->name, fs->required, &s, f);
    case PT_FIELD_NAME:
      return pt_get_name (msg, fs->name, fs->required, &s, f);
    case PT_FIELD_UINT:
      return pt_get_uint (msg, fs->name, fs->required, PT_MAX_REQUEST_ID, &i, f);
    case PT_FIELD_BOOL:
      return pt_get_bool (msg, fs->name, fs->required, &b, f);
    case PT_FIELD_NUMBER:
      return pt_get_number (msg, fs->name, fs->required, -G_MAXDOUBLE, G_MAXDOUBLE, &d, f);
    case PT_FIELD_OBJECT:
      return pt_get_object (msg, fs->name, fs->required, &o, f);
    case PT_FIELD_ARRAY:
      return pt_get_array (msg, fs->name, fs->required, &a, f);
    case PT_FIELD_ANY:
      if (fs->required && !json_object_has_member (msg, fs->name))
        return pt_fault_set (f, PT_ERR_BAD_REQUEST, "missing field \"%s\"", fs->name);
      return TRUE;
  }
  return FALSE;
}

static gboolean
check_fields (JsonObject *msg, const PtMessageSpec *spec, PtFault *f)
{
  for (guint i = 0; i < PT_MAX_FIELDS && spec->fields[i].name; i++)
    if (!check_field (msg, &spec->fields[i], f))
      return FALSE;
  return TRUE;
}

/* A server reply: {"id": ID or null, "ok": true, "result": {...}} or
 * {"id", "ok": false, "error": {"code", "message"}}. */
static gboolean
check_server_reply (JsonObject *msg, PtFault *f)
{
  JsonNode *id = json_object_get_member (msg, PT_F_ID);
  gint64 v;
  gboolean ok;
  JsonObject *o;
  const char *s;

  if (id == NULL)
    return pt_fault_set (f, PT_ERR_BAD_REQUEST, "missing field \"%s\"", PT_F_ID);
  if (!JSON_NODE_HOLDS_NULL (id) &&
      !pt_get_uint (msg, PT_F_ID, TRUE, PT_MAX_REQUEST_ID, &v, f))
    return FALSE;
  if (!pt_get_bool (msg, PT_F_OK, TRUE, &ok, f))
    return FALSE;
  if (ok)
    return pt_get_object (msg, PT_F_RESULT, TRUE, &o, f);
  return pt_get_object (msg, PT_F_ERROR, TRUE, &o, f) &&
      pt_get_string (o, PT_F_CODE, TRUE, &s, f) && pt_get_string (o, PT_F_MESSAGE, TRUE, &s, f);
}

gboolean
pt_message_check (JsonObject *msg, PtFault *f)
{
  const char *type, *name;
  const PtMessageSpec *spec;
  gint64 id;

  if (!pt_get_string (msg, PT_F_TYPE, TRUE, &type, f))
    return FALSE;
  if (strcmp (type, PT_TYPE_EVENT) == 0) {
    if (!pt_get_string (msg, PT_F_EVENT, TRUE, &name, f))
      return FALSE;
    spec = pt_message_spec_find (PT_KIND_EVENT, name);
    if (spec == NULL)
      return pt_fault_set (f, PT_ERR_UNKNOWN_TYPE, "no event \"%s\"", name);
    return check_fields (msg, spec, f);
  }
  /* "reply" both ways: the server's carries result or error, the client's
   * reply request an ackId */
  if (strcmp (type, PT_TYPE_REPLY) == 0 && !json_object_has_member (msg, PT_F_ACK_ID) &&
      (json_object_has_member (msg, PT_F_RESULT) || json_object_has_member (msg, PT_F_ERROR)))
    return check_server_reply (msg, f);
  spec = pt_message_spec_find (PT_KIND_REQUEST, type);
  if (spec == NULL)
    return pt_fault_set (f, PT_ERR_UNKNOWN_TYPE, "no request \"%s\"", type);
  return pt_get_uint (msg, PT_F_ID, TRUE, PT_MAX_REQUEST_ID, &id, f) &&
      check_fields (msg, spec, f);
}

JsonObject *
pt_msg_request_new (const char *type, gint64 id)
{
  JsonObject *o = json_object_new ();

  json_object_set_string_member (o, PT_F_TYPE, type);
  json_object_set_int_member (o, PT_F_ID, id);
  return o;
}

JsonObject *
pt_msg_event_new (const char *event)
{
  JsonObject *o = json_object_new ();

  json_object_set_string_member (o, PT_F_TYPE, PT_TYPE_EVENT);
  json_object_set_string_member (o, PT_F_EVENT, event);
  return o;
}
