/* peertree-server — requests: the one registry of handlers (request type ->
 * handler, filled by the modules' init), the hooks modules register, and the
 * dispatch of a message to its handler with a PtRequest.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "pt-server-private.h"

#include <string.h>

typedef struct {
  PtHandler handler;
  PtHandlerFlags flags;
} PtHandlerEntry;

typedef struct {
  PtAfterReplyFunc func;
  gpointer data;
  GDestroyNotify destroy;
} PtAfterReply;

/* ------------------------------------------------------------------------ */
/* Registry                                                                 */

void
pt_request_init (PtServer *self)
{
  self->parser = json_parser_new_immutable ();
  self->handlers = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  self->hooks = g_ptr_array_new ();
}

void
pt_request_finalize (PtServer *self)
{
  g_ptr_array_unref (self->hooks);
  g_hash_table_unref (self->handlers);
  g_object_unref (self->parser);
}

void
pt_server_add_handler (PtServer *self, const char *type, PtHandler handler, PtHandlerFlags flags)
{
  g_return_if_fail (!g_hash_table_contains (self->handlers, type));
  PtHandlerEntry *entry = g_new0 (PtHandlerEntry, 1);
  entry->handler = handler;
  entry->flags = flags;
  g_hash_table_insert (self->handlers, g_strdup (type), entry);
}

void
pt_server_set_binary_handler (PtServer *self,
    void (*handler) (PtConn *c, const guint8 *data, gsize len))
{
  g_return_if_fail (self->binary_handler == NULL);
  self->binary_handler = handler;
}

void
pt_server_add_hooks (PtServer *self, const PtHooks *hooks)
{
  g_ptr_array_add (self->hooks, (gpointer) hooks);
}

/* ------------------------------------------------------------------------ */
/* PtRequest                                                                */

void
pt_request_defer (PtRequest *req)
{
  req->deferred = TRUE;
}

void
pt_request_after_reply (PtRequest *req, PtAfterReplyFunc func, gpointer data,
    GDestroyNotify destroy)
{
  if (!req->after)
    req->after = g_array_new (FALSE, FALSE, sizeof (PtAfterReply));
  PtAfterReply a = { func, data, destroy };
  g_array_append_val (req->after, a);
}

/* Runs (@run) or drops the after-reply work of @req. */
static void
request_finish (PtRequest *req, gboolean run)
{
  if (!req->after)
    return;
  for (guint i = 0; i < req->after->len; i++) {
    PtAfterReply *a = &g_array_index (req->after, PtAfterReply, i);
    if (run)
      a->func (req->server, a->data);
    if (a->destroy)
      a->destroy (a->data);
  }
  g_clear_pointer (&req->after, g_array_unref);
}

/* ------------------------------------------------------------------------ */
/* Dispatch                                                                 */

void
pt_request_dispatch (PtConn *c, const char *text, gsize len)
{
  PtServer *self = c->server;
  g_autoptr (GError) error = NULL;
  PtFault f = { 0 };
  PtRequest req = { .server = self, .conn = c, .id = -1 };
  const char *type;
  JsonObject *result = NULL;

  if (text == NULL || len == 0) {
    /* wslay hands over NULL for an empty message; json-glib refuses it
     * without setting an error */
    pt_fault_set (&f, PT_ERR_BAD_JSON, "message is empty");
    goto fail;
  }
  /* JsonParser recurses once per nesting level: refuse deep documents before
   * parsing so that a 64 KiB message of brackets cannot exhaust the stack */
  if (!pt_json_depth_ok (text, len)) {
    pt_fault_set (&f, PT_ERR_BAD_JSON, "message nests deeper than %d levels", PT_MAX_JSON_DEPTH);
    goto fail;
  }
  if (!json_parser_load_from_data (self->parser, text, len, &error)) {
    pt_fault_set (&f, PT_ERR_BAD_JSON, "message is not valid JSON: %s",
        error ? error->message : "unknown parse error");
    goto fail;
  }
  JsonNode *root = json_parser_get_root (self->parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root)) {
    pt_fault_set (&f, PT_ERR_BAD_REQUEST, "message must be a JSON object");
    goto fail;
  }
  JsonObject *msg = json_node_get_object (root);
  if (!pt_get_uint (msg, PT_F_ID, TRUE, PT_MAX_REQUEST_ID, &req.id, &f)) {
    req.id = -1;
    goto fail;
  }
  if (!pt_get_string (msg, PT_F_TYPE, TRUE, &type, &f))
    goto fail;

  PtHandlerEntry *entry = g_hash_table_lookup (self->handlers, type);
  if (!entry) {
    pt_fault_set (&f, PT_ERR_UNKNOWN_TYPE, "unknown message type \"%.64s\"", type);
    goto fail;
  }
  if (!c->client_id && !(entry->flags & PT_HANDLER_BEFORE_HELLO)) {
    pt_fault_set (&f, PT_ERR_HELLO_REQUIRED, "the first message must be a hello");
    goto fail;
  }
  /* With an auth key, every request is held against the hello's token. */
  if (c->client_id && !c->remote && !pt_rights_check (c, type, msg, &f))
    goto fail;

  /* With --redis: a request about another server's tree, room, service or
   * client goes there (pt-cluster.c). Nothing below may touch msg then. */
  if (self->cluster && c->client_id && pt_cluster_route (c, type, msg, req.id, text, len))
    return;
  if (self->cluster && !c->client_id && strcmp (type, PT_REQ_HELLO) == 0 &&
      pt_cluster_route (c, type, msg, req.id, text, len))
    return;

  req.msg = msg;
  if (!entry->handler (&req, c, msg, &result, &f))
    goto fail;
  /* "noReply": true spares the success reply of a request that completes at
   * once (fire-and-forget emits, publications); errors are always replied. */
  if (!req.deferred && !pt_bool (msg, PT_F_NO_REPLY))
    pt_conn_reply_ok (c, req.id, result);
  else if (result)
    json_object_unref (result);
  req.msg = NULL;
  request_finish (&req, TRUE);
  return;

fail:
  request_finish (&req, FALSE);
  g_debug ("client %s: %s: %s", c->client_id ? c->client_id : "(no hello)", f.code, f.message);
  pt_conn_reply_error (c, req.id, &f);
  pt_fault_clear (&f);
}

void
pt_request_receive (PtConn *c, gboolean binary, const guint8 *data, gsize len)
{
  PtServer *self = c->server;
  self->metrics.messages_received++;
  self->metrics.bytes_received += len;
  if (binary) {
    /* Stream data is paced by its credit window, not by the message rate:
     * the binary handler charges only the other frames. */
    if (!c->client_id)
      pt_conn_gone (c, PT_CLOSE_POLICY, "binary frame before hello");
    else if (self->binary_handler)
      self->binary_handler (c, data, len);
    return;
  }
  if (!pt_conn_take_token (c))
    return;
  pt_request_dispatch (c, (const char *) data, len);
}
