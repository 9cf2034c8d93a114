/* peertree-server — the dashboard: GET /dashboard (a page and its script,
 * from the server's GResource) and GET /dashboard/events, server-sent events
 * that carry every tree and the members' link reports as they change.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A subscriber's connection leaves libsoup once its request is read (as a
 * WebSocket upgrade does) and becomes a PtEventStream: the server writes the
 * response head, a snapshot (every tree), then events, without blocking,
 * through a bounded queue. Changes are not sent one by one: the tree
 * handlers mark a tree dirty (pt_dashboard_tree_changed) or a member's report
 * new (pt_dashboard_report), and a flush PT_DASHBOARD_FLUSH_MS later sends
 * each dirty tree once to every subscriber. Nothing is marked while nobody
 * subscribes.
 *
 * Bounds: max-event-streams subscribers (503 beyond), PT_EVENT_STREAM_MAX_QUEUED
 * bytes queued to each (a subscriber that does not read is closed; its
 * browser reconnects and gets a new snapshot), PT_DASHBOARD_MAX_TREES trees
 * in a snapshot and PT_DASHBOARD_MAX_MEMBERS members per tree event
 * ("truncated": true beyond). docs/dashboard.md describes the events.
 */
#include "pt-server-private.h"

#include <string.h>
#include <unistd.h>

#define PT_EVENT_STREAM_MAX_QUEUED (4 * 1024 * 1024)
#define PT_DASHBOARD_MAX_TREES 100
#define PT_DASHBOARD_MAX_MEMBERS 1000
#define PT_DASHBOARD_FLUSH_MS 250
#define PT_EVENT_KEEPALIVE_US (15 * G_USEC_PER_SEC)
#define PT_EVENT_RETRY_MS 2000

typedef struct {
  PtServer *server;
  GIOStream *stream;            /* plain: a GSocketConnection; TLS: the GTlsConnection */
  GSocket *socket;              /* under it: closed first, so that nothing blocks */
  GPollableInputStream *in;
  GPollableOutputStream *out;
  GSource *in_source, *out_source;
  GByteArray *queue;            /* bytes not yet taken by the socket */
  char *ip;
  gint64 last_write;
} PtEventStream;

static void
event_stream_free (PtEventStream *es)
{
  if (es->in_source) {
    g_source_destroy (es->in_source);
    g_source_unref (es->in_source);
  }
  if (es->out_source) {
    g_source_destroy (es->out_source);
    g_source_unref (es->out_source);
  }
  if (es->socket) {
    g_socket_close (es->socket, NULL);
    g_object_unref (es->socket);
  }
  g_clear_object (&es->stream);
  g_byte_array_unref (es->queue);
  pt_limits_socket_closed (es->server, es->ip);
  g_free (es->ip);
  g_free (es);
}

/* Closes and frees @es: do not touch it afterwards. */
static void
event_stream_close (PtEventStream *es)
{
  g_hash_table_remove (es->server->event_streams, es);
}

static gboolean on_writable (GObject *pollable, gpointer user_data);

/* Writes what the socket takes; FALSE if @es was closed (and freed). */
static gboolean
event_stream_flush (PtEventStream *es)
{
  while (es->queue->len > 0) {
    g_autoptr (GError) error = NULL;
    gssize n = g_pollable_output_stream_write_nonblocking (es->out, es->queue->data,
        es->queue->len, NULL, &error);
    if (n > 0) {
      g_byte_array_remove_range (es->queue, 0, n);
      es->last_write = pt_now ();
      continue;
    }
    if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
      if (!es->out_source) {
        es->out_source = g_pollable_output_stream_create_source (es->out, NULL);
        g_source_set_callback (es->out_source, (GSourceFunc) (void (*) (void)) on_writable, es,
            NULL);
        g_source_attach (es->out_source, es->server->context);
      }
      return TRUE;
    }
    g_debug ("event stream of %s: %s", es->ip ? es->ip : "?", error ? error->message : "closed");
    event_stream_close (es);
    return FALSE;
  }
  return TRUE;
}

static gboolean
on_writable (GObject *pollable, gpointer user_data)
{
  PtEventStream *es = user_data;
  g_clear_pointer (&es->out_source, g_source_unref);
  event_stream_flush (es);
  return G_SOURCE_REMOVE;
}

/* Queues @len bytes to @es; beyond the bound the subscriber is closed. FALSE
 * if @es was closed (and freed). */
static gboolean
event_stream_write (PtEventStream *es, const char *data, gsize len)
{
  if (es->queue->len + len > PT_EVENT_STREAM_MAX_QUEUED) {
    g_debug ("event stream of %s does not read: %u bytes queued; closing it",
        es->ip ? es->ip : "?", es->queue->len);
    es->server->metrics.event_streams_dropped++;
    event_stream_close (es);
    return FALSE;
  }
  g_byte_array_append (es->queue, (const guint8 *) data, len);
  return event_stream_flush (es);
}

/* A subscriber sends nothing after its request: what it sends is dropped,
 * and its end of file (or an error) closes the stream. */
static gboolean
on_readable (GObject *pollable, gpointer user_data)
{
  PtEventStream *es = user_data;
  guint8 buf[4096];
  for (int i = 0; i < 16; i++) {
    g_autoptr (GError) error = NULL;
    gssize n = g_pollable_input_stream_read_nonblocking (es->in, buf, sizeof buf, NULL, &error);
    if (n > 0)
      continue;
    if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
      return G_SOURCE_CONTINUE;
    g_debug ("event stream of %s closed by the client", es->ip ? es->ip : "?");
    /* the source is ours to drop, not to destroy while it runs */
    g_clear_pointer (&es->in_source, g_source_unref);
    event_stream_close (es);
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

/* ------------------------------------------------------------------------ */
/* Events                                                                   */

static void
append_event (GString *out, const char *name, JsonObject *data /* transfer full */)
{
  g_autoptr (JsonNode) node = json_node_new (JSON_NODE_OBJECT);
  json_node_take_object (node, data);
  g_autofree char *text = json_to_string (node, FALSE);
  /* one data line: the JSON has no raw newline */
  g_string_append_printf (out, "event: %s\ndata: %s\n\n", name, text);
}

static JsonObject *
report_json (const PtLinkStats *st, gint64 now)
{
  JsonObject *o = json_object_new ();
  pt_report_write (&st->report, o);
  json_object_set_int_member (o, "ageMs", MAX (0, (now - st->at) / 1000));
  return o;
}

typedef struct {
  TreeEntry *t;
  JsonArray *members;
  guint n;
  gint64 now;
} MembersCtx;

static void
member_json (const char *peer, const char *parent, guint depth, gpointer user_data)
{
  MembersCtx *ctx = user_data;
  if (ctx->n++ >= PT_DASHBOARD_MAX_MEMBERS)
    return;
  JsonObject *m = json_object_new ();
  json_object_set_string_member (m, PT_F_ID, peer);
  json_object_set_string_member (m, PT_F_PARENT, parent);
  json_object_set_int_member (m, PT_F_DEPTH, depth);
  PtLinkStats *st = ctx->t->link_stats ? g_hash_table_lookup (ctx->t->link_stats, peer) : NULL;
  if (st)
    json_object_set_object_member (m, "report", report_json (st, ctx->now));
  json_array_add_object_element (ctx->members, m);
}

/* A tree's event: its shape (members breadth-first, each with its parent)
 * and every member's latest report. */
static JsonObject *
tree_json (TreeEntry *t, gint64 now)
{
  JsonObject *o = json_object_new ();
  MembersCtx ctx = { t, json_array_new (), 0, now };
  json_object_set_string_member (o, PT_F_ID, t->id);
  json_object_set_int_member (o, PT_F_K, pt_tree_get_k (t->tree));
  json_object_set_int_member (o, PT_F_K1, pt_tree_get_k1 (t->tree));
  json_object_set_string_member (o, PT_F_ROOT, pt_tree_get_root (t->tree));
  json_object_set_int_member (o, PT_F_SIZE, pt_tree_size (t->tree));
  json_object_set_boolean_member (o, "sourceLost", t->source_gone);
  pt_tree_foreach (t->tree, member_json, &ctx);
  json_object_set_boolean_member (o, "truncated", ctx.n > PT_DASHBOARD_MAX_MEMBERS);
  json_object_set_array_member (o, PT_F_MEMBERS, ctx.members);
  return o;
}

static void
append_server_event (PtServer *self, GString *out)
{
  JsonObject *o = json_object_new ();
  json_object_set_int_member (o, PT_F_CLIENTS, pt_server_get_n_clients (self));
  json_object_set_int_member (o, PT_F_TREES, g_hash_table_size (self->trees));
  append_event (out, "server", o);
}

/* The subscribers, in an array: writing may close (and remove) one. */
static GPtrArray *
streams_array (PtServer *self)
{
  GPtrArray *all = g_ptr_array_sized_new (g_hash_table_size (self->event_streams));
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, self->event_streams);
  while (g_hash_table_iter_next (&it, &key, NULL))
    g_ptr_array_add (all, key);
  return all;
}

/* Sends @text to every subscriber. */
static void
broadcast (PtServer *self, const GString *text)
{
  g_autoptr (GPtrArray) all = streams_array (self);
  for (guint i = 0; i < all->len; i++)
    event_stream_write (all->pdata[i], text->str, text->len);
}

static gboolean
flush (gpointer user_data)
{
  PtServer *self = user_data;
  gint64 now = pt_now ();
  g_clear_pointer (&self->dashboard_flush, g_source_unref);
  g_autoptr (GString) out = g_string_new (NULL);
  append_server_event (self, out);
  g_autoptr (GList) dirty = g_hash_table_get_keys (self->dirty_trees);
  dirty = g_list_sort (dirty, (GCompareFunc) strcmp);
  for (GList *l = dirty; l; l = l->next) {
    TreeEntry *t = g_hash_table_lookup (self->trees, l->data);
    if (t) {
      append_event (out, "tree", tree_json (t, now));
    } else {
      JsonObject *o = json_object_new ();
      json_object_set_string_member (o, PT_F_ID, l->data);
      append_event (out, "tree-closed", o);
    }
    /* the tree event carries its reports */
    g_hash_table_remove (self->dirty_reports, l->data);
  }
  GHashTableIter it;
  gpointer key, value;
  g_hash_table_iter_init (&it, self->dirty_reports);
  while (g_hash_table_iter_next (&it, &key, &value)) {
    TreeEntry *t = g_hash_table_lookup (self->trees, key);
    if (!t || !t->link_stats)
      continue;
    JsonObject *reports = json_object_new ();
    GHashTableIter mi;
    gpointer member;
    g_hash_table_iter_init (&mi, value);
    while (g_hash_table_iter_next (&mi, &member, NULL)) {
      PtLinkStats *st = g_hash_table_lookup (t->link_stats, member);
      if (st)
        json_object_set_object_member (reports, member, report_json (st, now));
    }
    JsonObject *o = json_object_new ();
    json_object_set_string_member (o, "tree", t->id);
    json_object_set_object_member (o, "reports", reports);
    append_event (out, "reports", o);
  }
  g_hash_table_remove_all (self->dirty_trees);
  g_hash_table_remove_all (self->dirty_reports);
  broadcast (self, out);
  return G_SOURCE_REMOVE;
}

static void
schedule_flush (PtServer *self)
{
  if (self->dashboard_flush || !self->context)
    return;
  self->dashboard_flush = g_timeout_source_new (PT_DASHBOARD_FLUSH_MS);
  g_source_set_callback (self->dashboard_flush, flush, self, NULL);
  g_source_attach (self->dashboard_flush, self->context);
}

void
pt_dashboard_tree_changed (PtServer *self, const char *tree_id)
{
  if (g_hash_table_size (self->event_streams) == 0)
    return;
  if (!g_hash_table_contains (self->dirty_trees, tree_id))
    g_hash_table_add (self->dirty_trees, g_strdup (tree_id));
  schedule_flush (self);
}

void
pt_dashboard_report (PtServer *self, const char *tree_id, const char *member)
{
  if (g_hash_table_size (self->event_streams) == 0)
    return;
  GHashTable *set = g_hash_table_lookup (self->dirty_reports, tree_id);
  if (!set) {
    set = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
    g_hash_table_insert (self->dirty_reports, g_strdup (tree_id), set);
  }
  if (!g_hash_table_contains (set, member))
    g_hash_table_add (set, g_strdup (member));
  schedule_flush (self);
}

/* ------------------------------------------------------------------------ */
/* GET /dashboard/events                                                    */

static const char event_stream_head[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/event-stream; charset=utf-8\r\n"
    "Cache-Control: no-store\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "Connection: close\r\n"
    "\r\n";

static void
handle_events (PtServer *self, SoupServerMessage *msg)
{
  if (!pt_http_check_get (msg) || !pt_http_check_origin (self, msg) ||
      !pt_http_check_admin (self, msg, "GET /dashboard/events"))
    return;
  if (g_hash_table_size (self->event_streams) >= self->max_event_streams) {
    self->metrics.rejected[PT_REJECT_EVENT_STREAMS]++;
    pt_limits_log_refusal (self, soup_server_message_get_remote_host (msg),
        "GET /dashboard/events refused: %u subscribers (max-event-streams)",
        g_hash_table_size (self->event_streams));
    soup_server_message_set_status (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "too many subscribers");
    return;
  }
  if (soup_server_message_get_method (msg) == SOUP_METHOD_HEAD) {
    soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
    soup_message_headers_replace (soup_server_message_get_response_headers (msg),
        "Content-Type", "text/event-stream; charset=utf-8");
    return;
  }
  GTlsConnection *tls = NULL;
  char *ip = NULL;
  int fd = pt_http_take_connection (self, msg, &tls, &ip);
  if (fd < 0)
    return;
  PtEventStream *es = g_new0 (PtEventStream, 1);
  es->server = self;
  es->ip = ip;
  es->queue = g_byte_array_new ();
  es->last_write = pt_now ();
  if (tls) {
    /* the TLS connection carries the bytes; its base socket is closed first
     * at the end, so that no close_notify can block */
    GIOStream *base = NULL;
    close (fd);
    es->stream = G_IO_STREAM (tls);
    g_object_get (tls, "base-io-stream", &base, NULL);
    if (base && G_IS_SOCKET_CONNECTION (base))
      es->socket = g_object_ref (g_socket_connection_get_socket (G_SOCKET_CONNECTION (base)));
    g_clear_object (&base);
  } else {
    g_autoptr (GError) error = NULL;
    es->socket = g_socket_new_from_fd (fd, &error);
    if (!es->socket) {
      close (fd);
      g_hash_table_add (self->event_streams, es);
      event_stream_close (es);
      return;
    }
    es->stream = G_IO_STREAM (g_socket_connection_factory_create_connection (es->socket));
  }
  es->in = G_POLLABLE_INPUT_STREAM (g_io_stream_get_input_stream (es->stream));
  es->out = G_POLLABLE_OUTPUT_STREAM (g_io_stream_get_output_stream (es->stream));
  g_hash_table_add (self->event_streams, es);
  es->in_source = g_pollable_input_stream_create_source (es->in, NULL);
  g_source_set_callback (es->in_source, (GSourceFunc) (void (*) (void)) on_readable, es, NULL);
  g_source_attach (es->in_source, self->context);

  /* the snapshot: the server, then every tree (bounded) */
  gint64 now = pt_now ();
  g_autoptr (GString) out = g_string_new (event_stream_head);
  g_string_append_printf (out, "retry: %d\n\n", PT_EVENT_RETRY_MS);
  append_server_event (self, out);
  g_autoptr (GList) ids = g_hash_table_get_keys (self->trees);
  ids = g_list_sort (ids, (GCompareFunc) strcmp);
  guint n = 0;
  for (GList *l = ids; l && n < PT_DASHBOARD_MAX_TREES; l = l->next, n++)
    append_event (out, "tree", tree_json (g_hash_table_lookup (self->trees, l->data), now));
  g_debug ("event stream for %s: %u subscribers", ip ? ip : "?",
      g_hash_table_size (self->event_streams));
  event_stream_write (es, out->str, out->len);
}

/* ------------------------------------------------------------------------ */
/* Routes, life cycle                                                       */

#define PAGE_CSP "default-src 'none'; script-src 'self'; connect-src 'self'; " \
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; " \
    "form-action 'none'; frame-ancestors 'none'"

/* GET /dashboard, /dashboard/dashboard.js, /dashboard/events */
static void
dashboard_route (PtServer *self, SoupServerMessage *msg, const char *path)
{
  if (g_strcmp0 (path, "/dashboard/events") == 0) {
    handle_events (self, msg);
    return;
  }
  if (!pt_http_check_get (msg))
    return;
  /* The page and its script hold no data: served without a token (the page
   * asks for one when the events need it). */
  if (g_strcmp0 (path, "/dashboard") == 0 || g_strcmp0 (path, "/dashboard/") == 0) {
    soup_message_headers_replace (soup_server_message_get_response_headers (msg),
        "Content-Security-Policy", PAGE_CSP);
    soup_message_headers_replace (soup_server_message_get_response_headers (msg),
        "Referrer-Policy", "no-referrer");
    pt_http_serve_resource (msg, "dashboard.html", "text/html; charset=utf-8");
  } else if (g_strcmp0 (path, "/dashboard/dashboard.js") == 0) {
    pt_http_serve_resource (msg, "dashboard.js", "text/javascript; charset=utf-8");
  } else {
    soup_server_message_set_status (msg, SOUP_STATUS_NOT_FOUND, NULL);
  }
}

/* Once a second: a comment line to subscribers idle for 15 s, so that
 * proxies keep the stream and a vanished peer is found out. */
void
pt_dashboard_sweep (PtServer *self, gint64 now)
{
  static const char keepalive[] = ": keepalive\n\n";
  g_autoptr (GPtrArray) all = streams_array (self);
  for (guint i = 0; i < all->len; i++) {
    PtEventStream *es = all->pdata[i];
    if (now - es->last_write >= PT_EVENT_KEEPALIVE_US) {
      es->last_write = now;
      event_stream_write (es, keepalive, sizeof keepalive - 1);
    }
  }
}

guint
pt_dashboard_n_streams (PtServer *self)
{
  return self->event_streams ? g_hash_table_size (self->event_streams) : 0;
}

void
pt_dashboard_stop (PtServer *self)
{
  if (self->dashboard_flush) {
    g_source_destroy (self->dashboard_flush);
    g_clear_pointer (&self->dashboard_flush, g_source_unref);
  }
  g_hash_table_remove_all (self->event_streams);
  g_hash_table_remove_all (self->dirty_trees);
  g_hash_table_remove_all (self->dirty_reports);
}

void
pt_dashboard_init (PtServer *self)
{
  self->event_streams = g_hash_table_new_full (NULL, NULL,
      (GDestroyNotify) event_stream_free, NULL);
  self->dashboard_route = dashboard_route;
  self->dirty_trees = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->dirty_reports = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
      (GDestroyNotify) g_hash_table_unref);
}

void
pt_dashboard_finalize (PtServer *self)
{
  pt_dashboard_stop (self);
  g_clear_pointer (&self->event_streams, g_hash_table_unref);
  g_clear_pointer (&self->dirty_trees, g_hash_table_unref);
  g_clear_pointer (&self->dirty_reports, g_hash_table_unref);
}
