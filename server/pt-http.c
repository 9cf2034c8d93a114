/* peertree-server — HTTP: GET /status, and the WebSocket upgrade that hands
 * a client's socket to a new PtConn.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "pt-server-private.h"
#include "pt-resources.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <libsoup/soup.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Status                                                                   */

static void
status_member (const char *peer, const char *parent, guint depth, gpointer user_data)
{
  gpointer *args = user_data;
  JsonArray *members = args[0];
  TreeEntry *t = args[1];
  JsonObject *m = json_object_new ();
  json_object_set_string_member (m, PT_F_ID, peer);
  json_object_set_string_member (m, PT_F_PARENT, parent);
  json_object_set_int_member (m, PT_F_DEPTH, depth);
  JsonArray *children = json_array_new ();
  g_autofree const char **ids = pt_tree_get_children (t->tree, peer);
  for (guint i = 0; ids[i]; i++)
    json_array_add_string_element (children, ids[i]);
  json_object_set_array_member (m, PT_F_CHILDREN, children);
  json_array_add_object_element (members, m);
}

JsonNode *
pt_server_build_status (PtServer *self)
{
  g_return_val_if_fail (PT_IS_SERVER (self), NULL);
  JsonObject *root = json_object_new ();
  JsonArray *trees = json_array_new ();
  g_autoptr (GList) ids = g_hash_table_get_keys (self->trees);
  ids = g_list_sort (ids, (GCompareFunc) strcmp);
  for (GList *l = ids; l; l = l->next) {
    TreeEntry *t = g_hash_table_lookup (self->trees, l->data);
    JsonObject *o = json_object_new ();
    JsonArray *members = json_array_new ();
    gpointer args[2] = { members, t };
    json_object_set_string_member (o, PT_F_ID, t->id);
    json_object_set_int_member (o, PT_F_K, pt_tree_get_k (t->tree));
    json_object_set_int_member (o, PT_F_K1, pt_tree_get_k1 (t->tree));
    json_object_set_string_member (o, PT_F_ROOT, pt_tree_get_root (t->tree));
    json_object_set_int_member (o, PT_F_SIZE, pt_tree_size (t->tree));
    pt_tree_foreach (t->tree, status_member, args);
    json_object_set_array_member (o, PT_F_MEMBERS, members);
    json_array_add_object_element (trees, o);
  }
  json_object_set_int_member (root, PT_F_CLIENTS, pt_server_get_n_clients (self));
  json_object_set_array_member (root, PT_F_TREES, trees);
  pt_cluster_add_status (self, root);
  /* take: json_node_init_object would add a reference nobody drops */
  JsonNode *node = json_node_new (JSON_NODE_OBJECT);
  json_node_take_object (node, root);
  return node;
}

gboolean
pt_http_check_get (SoupServerMessage *msg)
{
  const char *method = soup_server_message_get_method (msg);
  if (method == SOUP_METHOD_GET || method == SOUP_METHOD_HEAD)
    return TRUE;
  soup_server_message_set_status (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, NULL);
  soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Allow",
      "GET, HEAD");
  return FALSE;
}

gboolean
pt_http_check_admin (PtServer *self, SoupServerMessage *msg, const char *what)
{
  guint refused = pt_rights_check_admin_header (self, soup_message_headers_get_one (
      soup_server_message_get_request_headers (msg), "Authorization"));
  if (!refused)
    return TRUE;
  pt_limits_log_refusal (self, soup_server_message_get_remote_host (msg), "%s refused: %s",
      what, refused == 401 ? "no valid bearer token" : "the token is not admin");
  soup_server_message_set_status (msg, refused, NULL);
  if (refused == 401)
    soup_message_headers_replace (soup_server_message_get_response_headers (msg),
        "WWW-Authenticate", "Bearer realm=\"peertree\"");
  return FALSE;
}

gboolean
pt_http_check_origin (PtServer *self, SoupServerMessage *msg)
{
  /* Browsers send Origin with every WebSocket and cross-origin request;
   * other clients send none and are not concerned by the check. */
  const char *origin = soup_message_headers_get_one (
      soup_server_message_get_request_headers (msg), "Origin");
  if (!self->origins || !origin || g_strv_contains ((const char *const *) self->origins, origin))
    return TRUE;
  g_autofree char *shown = g_strescape (origin, NULL);
  pt_limits_log_refusal (self, soup_server_message_get_remote_host (msg),
      "%s from origin \"%.200s\" refused (not in allowed-origins)",
      g_uri_get_path (soup_server_message_get_uri (msg)), shown);
  self->metrics.rejected[PT_REJECT_ORIGIN]++;
  soup_server_message_set_status (msg, SOUP_STATUS_FORBIDDEN, "origin not allowed");
  return FALSE;
}

static void
on_status (SoupServer *soup, SoupServerMessage *msg, const char *path, GHashTable *query,
    gpointer user_data)
{
  (void) soup;
  (void) path;
  (void) query;
  PtServer *self = user_data;
  /* With an auth key, the topology is for admin tokens only. */
  if (!pt_http_check_get (msg) || !pt_http_check_admin (self, msg, "GET /status"))
    return;
  g_autoptr (JsonNode) node = pt_server_build_status (self);
  gsize len;
  char *text = json_to_string (node, TRUE);
  len = strlen (text);
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_TAKE, text, len);
}

/* Prometheus' text format; with an auth key, for admin tokens only (as
 * /status: the tree ids are in it). */
static void
on_metrics (SoupServer *soup, SoupServerMessage *msg, const char *path, GHashTable *query,
    gpointer user_data)
{
  PtServer *self = user_data;
  if (g_strcmp0 (path, "/metrics") != 0) {
    soup_server_message_set_status (msg, SOUP_STATUS_NOT_FOUND, NULL);
    return;
  }
  if (!pt_http_check_get (msg) || !pt_http_check_admin (self, msg, "GET /metrics"))
    return;
  GString *text = pt_metrics_text (self);
  gsize len = text->len;
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Cache-Control",
      "no-store");
  soup_server_message_set_response (msg, "text/plain; version=0.0.4; charset=utf-8",
      SOUP_MEMORY_TAKE, g_string_free (text, FALSE), len);
}

static void
on_dashboard (SoupServer *soup, SoupServerMessage *msg, const char *path, GHashTable *query,
    gpointer user_data)
{
  PtServer *self = user_data;
  if (self->dashboard_route)
    self->dashboard_route (self, msg, path);
  else
    soup_server_message_set_status (msg, SOUP_STATUS_NOT_FOUND, NULL);
}

/* The server's own files (server/resources/peertree.gresource.xml). */
void
pt_http_serve_resource (SoupServerMessage *msg, const char *name, const char *content_type)
{
  g_autofree char *path = g_strconcat ("/org/peertree/server/", name, NULL);
  g_autoptr (GBytes) data = g_resource_lookup_data (pt_server_get_resource (), path,
      G_RESOURCE_LOOKUP_FLAGS_NONE, NULL);
  if (!data) {
    soup_server_message_set_status (msg, SOUP_STATUS_NOT_FOUND, NULL);
    return;
  }
  SoupMessageHeaders *h = soup_server_message_get_response_headers (msg);
  soup_message_headers_replace (h, "Cache-Control", "no-cache");
  soup_message_headers_replace (h, "X-Content-Type-Options", "nosniff");
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  gsize len;
  const char *bytes = g_bytes_get_data (data, &len);
  soup_server_message_set_response (msg, content_type, SOUP_MEMORY_COPY, bytes, len);
}

/* ------------------------------------------------------------------------ */
/* WebSocket upgrade                                                        */

/* The HTTP upgrade is libsoup's; the socket then leaves libsoup for a PtWs
 * on the server's epoll set (pt-ws.h says why). */
/* The socket under the stream libsoup hands over: ours (accepted by
 * pt-http.c), under libsoup's SoupIOStream. */
static GSocket *
stream_socket (GIOStream *stream, GTlsConnection **tls)
{
  g_autoptr (GIOStream) base = NULL;
  if (G_IS_SOCKET_CONNECTION (stream))
    return g_socket_connection_get_socket (G_SOCKET_CONNECTION (stream));
  if (G_IS_TLS_CONNECTION (stream)) {
    /* wss: the socket under the TLS connection */
    *tls = G_TLS_CONNECTION (stream);
    g_object_get (stream, "base-io-stream", &base, NULL);
    return base && G_IS_SOCKET_CONNECTION (base) ?
        g_socket_connection_get_socket (G_SOCKET_CONNECTION (base)) : NULL;
  }
  if (!g_object_class_find_property (G_OBJECT_GET_CLASS (stream), "base-iostream"))
    return NULL;
  g_object_get (stream, "base-iostream", &base, NULL);
  return base ? stream_socket (base, tls) : NULL;
}

/* pt_http_take_connection; with @initial, the bytes the client sent right
 * after its request (they may sit in libsoup's buffer) are taken along. */
static int
take_connection (PtServer *self, SoupServerMessage *msg, GTlsConnection **tls, char **ip,
    GByteArray *initial)
{
  g_autoptr (GIOStream) stream = soup_server_message_steal_connection (msg);
  *tls = NULL;
  *ip = NULL;
  GTlsConnection *t = NULL;
  GSocket *socket = stream ? stream_socket (stream, &t) : NULL;
  int fd = socket ? dup (g_socket_get_fd (socket)) : -1;
  if (fd < 0) {
    if (stream)
      g_io_stream_close (stream, NULL, NULL);
    return -1;
  }
  *ip = pt_socket_peer_ip (socket);
  GInputStream *in = g_io_stream_get_input_stream (stream);
  if (initial && G_IS_POLLABLE_INPUT_STREAM (in)) {
    guint8 buf[4096];
    gssize n;
    while ((n = g_pollable_input_stream_read_nonblocking (G_POLLABLE_INPUT_STREAM (in), buf,
                sizeof buf, NULL, NULL)) > 0)
      g_byte_array_append (initial, buf, n);
  }
  g_object_ref (socket);
  if (t) {
    /* wss: the TLS connection carries the bytes; the duplicate only drives
     * epoll. libsoup's wrapper is dropped, not closed (that would close the
     * TLS connection). */
    *tls = g_object_ref (t);
    g_clear_object (&stream);
  } else {
    /* Closing the stream closes libsoup's descriptor (and lets libsoup free
     * its connection objects); ours is a duplicate. */
    g_io_stream_close (stream, NULL, NULL);
    g_clear_object (&stream);
  }
  /* The socket is the caller's now: it counts once against its address. */
  g_hash_table_remove (self->http_conns, socket);
  g_object_unref (socket);
  pt_limits_socket_opened (self, *ip);
  return fd;
}

int
pt_http_take_connection (PtServer *self, SoupServerMessage *msg, GTlsConnection **tls,
    char **ip)
{
  return take_connection (self, msg, tls, ip, NULL);
}

static void
on_upgraded (SoupServerMessage *msg, gpointer user_data)
{
  PtServer *self = user_data;
  g_signal_handlers_disconnect_by_func (msg, on_upgraded, user_data);
  g_autoptr (GByteArray) initial = g_byte_array_new ();
  GTlsConnection *tls = NULL;
  g_autofree char *ip = NULL;
  int fd = take_connection (self, msg, &tls, &ip, initial);
  if (fd < 0)
    return;
  PtConn *c;
  if (tls) {
    c = pt_conn_new_stream (self, G_IO_STREAM (tls), fd, initial->data, initial->len,
        pt_request_receive);
    g_object_unref (tls);
  } else {
    c = pt_conn_new (self, fd, initial->data, initial->len, pt_request_receive);
  }
  c->ip = g_steal_pointer (&ip);
}

static void
on_http (SoupServer *soup, SoupServerMessage *msg, const char *path, GHashTable *query,
    gpointer user_data)
{
  PtServer *self = user_data;
  g_autoptr (GError) error = NULL;
  if (!soup_websocket_server_check_handshake (msg, NULL, NULL, NULL, &error)) {
    soup_server_message_set_status (msg, SOUP_STATUS_BAD_REQUEST, NULL);
    soup_server_message_set_response (msg, "text/plain", SOUP_MEMORY_STATIC,
        "peertree-server: connect with a WebSocket, or GET /status\n", 58);
    return;
  }
  if (!pt_http_check_origin (self, msg))
    return;
  if (g_hash_table_size (self->conns) >= self->max_clients) {
    self->metrics.rejected[PT_REJECT_MAX_CLIENTS]++;
    soup_server_message_set_status (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "server full");
    return;
  }
  soup_websocket_server_process_handshake (msg, NULL, NULL, NULL, NULL);
  g_signal_connect (msg, "wrote-informational", G_CALLBACK (on_upgraded), self);
}

/* ------------------------------------------------------------------------ */
/* Accepting connections                                                    */

/* libsoup's own listener gives up for good on the first failed accept (a
 * full descriptor table), listens with a backlog of 10 and never times out a
 * request that does not complete. The server therefore owns its listening
 * socket: it accepts with a large backlog, hands each connection to libsoup
 * (soup_server_accept_iostream), keeps every HTTP connection within
 * http-timeout, keeps all its sockets below the descriptor limit, and backs
 * off and retries when accept fails. */

#define ACCEPT_BATCH 64
#define ACCEPT_BACKOFF_MS 100

typedef struct {
  PtServer *server;
  GSocket *socket;   /* libsoup's connection holds the other reference */
  GSource *peek;     /* with TLS: waiting for the first byte, or NULL */
  char *ip;          /* the peer's address (per-IP limits) */
  gint64 deadline;   /* closed then unless upgraded */
  gboolean shut;     /* shut down for being too slow: libsoup closes it */
} PtHttpConn;

static void
http_conn_free (PtHttpConn *h)
{
  pt_limits_socket_closed (h->server, h->ip);
  if (h->peek) {
    g_source_destroy (h->peek);
    g_source_unref (h->peek);
  }
  g_free (h->ip);
  g_object_unref (h->socket);
  g_free (h);
}

static gint64
http_deadline (PtServer *self)
{
  return pt_now () + (gint64) self->http_timeout * G_USEC_PER_SEC;
}

/* Forgets connections libsoup has closed (finished, failed or upgraded: an
 * upgraded socket is a PtConn now). */
static void
http_purge (PtServer *self)
{
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, self->http_conns);
  while (g_hash_table_iter_next (&it, &key, NULL))
    if (g_socket_is_closed (key))
      g_hash_table_iter_remove (&it);
}

guint
pt_http_n_sockets (PtServer *self)
{
  return g_hash_table_size (self->http_conns) + g_hash_table_size (self->conns) +
      (self->event_streams ? g_hash_table_size (self->event_streams) : 0);
}

/* Once a second: connections not upgraded within http-timeout (an
 * unfinished request, a slow one, an idle keep-alive) are shut down; libsoup
 * then reads EOF and closes them. */
void
pt_http_sweep (PtServer *self, gint64 now)
{
  http_purge (self);
  GHashTableIter it;
  gpointer value;
  g_hash_table_iter_init (&it, self->http_conns);
  while (g_hash_table_iter_next (&it, NULL, &value)) {
    PtHttpConn *h = value;
    if (!h->shut && h->deadline <= now) {
      g_debug ("HTTP connection idle for %u s: closing it", self->http_timeout);
      g_socket_shutdown (h->socket, TRUE, TRUE, NULL);
      h->shut = TRUE;
    }
  }
}

static void on_got_headers (SoupServerMessage *msg, gpointer user_data);

static void
on_request_started (SoupServer *soup, SoupServerMessage *msg, gpointer user_data)
{
  g_signal_connect (msg, "got-headers", G_CALLBACK (on_got_headers), user_data);
}

/* Requests carry no body (GET /status, the upgrade): one that announces a
 * body is answered 413 and closed before libsoup reads (and buffers) it. */
static void
on_got_headers (SoupServerMessage *msg, gpointer user_data)
{
  SoupMessageHeaders *headers = soup_server_message_get_request_headers (msg);
  SoupEncoding encoding = soup_message_headers_get_encoding (headers);
  if (encoding == SOUP_ENCODING_NONE ||
      (encoding == SOUP_ENCODING_CONTENT_LENGTH &&
       soup_message_headers_get_content_length (headers) == 0))
    return;
  g_debug ("refusing a request body");
  g_signal_handlers_disconnect_by_func (msg, on_got_headers, user_data);
  g_autoptr (GIOStream) stream = soup_server_message_steal_connection (msg);
  if (!stream)
    return;
  static const char response[] = "HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\n"
      "Content-Length: 0\r\n\r\n";
  GOutputStream *out = g_io_stream_get_output_stream (stream);
  /* Best effort, without blocking: the response fits any socket buffer. */
  if (G_IS_POLLABLE_OUTPUT_STREAM (out))
    g_pollable_output_stream_write_nonblocking (G_POLLABLE_OUTPUT_STREAM (out), response,
        sizeof response - 1, NULL, NULL);
  g_io_stream_close (stream, NULL, NULL);
}

static gboolean accept_resume (gpointer user_data);

/* Stops watching the listening socket for ACCEPT_BACKOFF_MS. */
static void
accept_pause (PtServer *self)
{
  if (self->accept_source) {
    g_source_destroy (self->accept_source);
    g_clear_pointer (&self->accept_source, g_source_unref);
  }
  if (!self->accept_retry) {
    self->accept_retry = g_timeout_source_new (ACCEPT_BACKOFF_MS);
    g_source_set_callback (self->accept_retry, accept_resume, self, NULL);
    g_source_attach (self->accept_retry, self->context);
  }
}

/* Out of descriptors: the spare one makes room to accept a connection and
 * close it at once, so that the backlog drains instead of filling. */
static void
accept_shed_one (PtServer *self)
{
  if (self->spare_fd < 0)
    return;
  close (self->spare_fd);
  int fd = accept4 (g_socket_get_fd (self->listener), NULL, NULL, SOCK_CLOEXEC);
  if (fd >= 0)
    close (fd);
  self->spare_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* The per-IP limits; at the cap, closed connections not yet forgotten are
 * purged first so that they do not count. */
static gboolean
accept_allowed (PtServer *self, const char *ip)
{
  if (pt_limits_at_cap (self, ip))
    http_purge (self);
  return pt_limits_accept (self, ip);
}

/* Hands a connection (plain, or TLS with its handshake done) to libsoup. */
static void
http_serve (PtServer *self, GSocket *socket, GIOStream *stream)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocketAddress) local = g_socket_get_local_address (socket, NULL);
  g_autoptr (GSocketAddress) remote = g_socket_get_remote_address (socket, NULL);
  if (!local || !remote ||
      !soup_server_accept_iostream (self->soup, stream, local, remote, &error)) {
    g_debug ("cannot serve a connection: %s", error ? error->message : "no address");
    g_io_stream_close (stream, NULL, NULL);
    g_socket_close (socket, NULL);
    g_hash_table_remove (self->http_conns, socket);
  }
}

/* The same port serves ws:// and wss://: a TLS client speaks first, with a
 * handshake record (0x16); HTTP starts with a method name. The handshake runs
 * within the connection's http-timeout (the sweep shuts the socket down). */

typedef struct {
  PtServer *server;   /* valid unless cancel is cancelled */
  GSocket *socket;
  GCancellable *cancel;
} PtHandshake;

static void
on_handshake (GObject *source, GAsyncResult *result, gpointer user_data)
{
  PtHandshake *hs = user_data;
  g_autoptr (GError) error = NULL;
  GTlsConnection *tls = G_TLS_CONNECTION (source);
  gboolean ok = g_tls_connection_handshake_finish (tls, result, &error);
  if (g_cancellable_is_cancelled (hs->cancel)) {
    /* the server stopped: its tables are gone */
    g_object_unref (hs->cancel);
    g_object_unref (hs->socket);
    g_free (hs);
    return;
  }
  PtServer *self = hs->server;
  if (ok)
    http_serve (self, hs->socket, G_IO_STREAM (tls));
  else {
    g_debug ("TLS handshake failed: %s", error->message);
    g_socket_close (hs->socket, NULL);
    g_hash_table_remove (self->http_conns, hs->socket);
  }
  g_object_unref (hs->cancel);
  g_object_unref (hs->socket);
  g_free (hs);
}

static gboolean
on_first_byte (GSocket *socket, GIOCondition condition, gpointer user_data)
{
  PtHttpConn *h = user_data;
  PtServer *self = h->server;
  g_clear_pointer (&h->peek, g_source_unref);
  guint8 b;
  ssize_t r = recv (g_socket_get_fd (socket), &b, 1, MSG_PEEK | MSG_DONTWAIT);
  if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
    h->peek = g_socket_create_source (socket, G_IO_IN, NULL);
    g_source_set_callback (h->peek, (GSourceFunc) (void (*) (void)) on_first_byte, h, NULL);
    g_source_attach (h->peek, self->context);
    return G_SOURCE_REMOVE;
  }
  g_autoptr (GSocketConnection) conn = g_socket_connection_factory_create_connection (socket);
  if (r != 1) {
    /* gone before a byte */
    g_socket_close (socket, NULL);
    g_hash_table_remove (self->http_conns, socket);
    return G_SOURCE_REMOVE;
  }
  if (b != 0x16) {
    http_serve (self, socket, G_IO_STREAM (conn));
    return G_SOURCE_REMOVE;
  }
  g_autoptr (GError) error = NULL;
  g_autoptr (GIOStream) tls = g_tls_server_connection_new (G_IO_STREAM (conn), self->tls_cert,
      &error);
  if (!tls) {
    g_warning ("cannot serve TLS: %s", error->message);
    g_socket_close (socket, NULL);
    g_hash_table_remove (self->http_conns, socket);
    return G_SOURCE_REMOVE;
  }
  PtHandshake *hs = g_new0 (PtHandshake, 1);
  hs->server = self;
  hs->socket = g_object_ref (socket);
  hs->cancel = g_object_ref (self->tls_cancel);
  g_tls_connection_handshake_async (G_TLS_CONNECTION (tls), G_PRIORITY_DEFAULT,
      self->tls_cancel, on_handshake, hs);
  return G_SOURCE_REMOVE;
}

static void
accept_one (PtServer *self, int fd)
{
  g_autoptr (GError) error = NULL;
  if (pt_http_n_sockets (self) >= self->max_sockets) {
    self->metrics.rejected[PT_REJECT_SOCKETS]++;
    g_debug ("%u sockets open: refusing a connection", pt_http_n_sockets (self));
    close (fd);
    return;
  }
  g_autoptr (GSocket) socket = g_socket_new_from_fd (fd, &error);
  if (!socket) {
    close (fd);
    return;
  }
  /* Messages are small and latency-bound (an SDP relay is one write to
   * the parent and one to the child): without TCP_NODELAY a message that
   * leaves in two segments waits for the peer's delayed ACK, 40 ms on
   * Linux, which was most of a viewer's join time on loopback. */
  g_socket_set_option (socket, IPPROTO_TCP, TCP_NODELAY, 1, NULL);
  g_autoptr (GSocketConnection) conn = g_socket_connection_factory_create_connection (socket);
  g_autoptr (GSocketAddress) local = g_socket_get_local_address (socket, NULL);
  g_autoptr (GSocketAddress) remote = g_socket_get_remote_address (socket, NULL);
  if (!local || !remote) {
    g_io_stream_close (G_IO_STREAM (conn), NULL, NULL);
    return;
  }
  g_autofree char *ip = pt_socket_peer_ip (socket);
  if (!accept_allowed (self, ip)) {
    static const char response[] = "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
        "Content-Length: 0\r\n\r\n";
    /* Best effort, without blocking, before any request is read. */
    g_socket_send_with_blocking (socket, response, sizeof response - 1, FALSE, NULL, NULL);
    g_io_stream_close (G_IO_STREAM (conn), NULL, NULL);
    return;
  }
  PtHttpConn *h = g_new0 (PtHttpConn, 1);
  h->server = self;
  h->ip = g_steal_pointer (&ip);
  pt_limits_socket_opened (self, h->ip);
  h->socket = g_object_ref (socket);
  h->deadline = http_deadline (self);
  g_hash_table_insert (self->http_conns, socket, h);
  if (self->tls_cert) {
    /* ws:// or wss://: told by the first byte */
    h->peek = g_socket_create_source (socket, G_IO_IN, NULL);
    g_source_set_callback (h->peek, (GSourceFunc) (void (*) (void)) on_first_byte, h, NULL);
    g_source_attach (h->peek, self->context);
    return;
  }
  if (!soup_server_accept_iostream (self->soup, G_IO_STREAM (conn), local, remote, &error)) {
    g_debug ("cannot serve a connection: %s", error->message);
    g_io_stream_close (G_IO_STREAM (conn), NULL, NULL);
    g_hash_table_remove (self->http_conns, socket);
  }
}

static gboolean
on_acceptable (GSocket *listener, GIOCondition condition, gpointer user_data)
{
  PtServer *self = user_data;
  if (pt_http_n_sockets (self) + ACCEPT_BATCH >= self->max_sockets)
    http_purge (self);
  /* A bounded batch per turn: the WebSocket clients are served in between. */
  for (guint i = 0; i < ACCEPT_BATCH; i++) {
    int fd = accept4 (g_socket_get_fd (listener), NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) {
      accept_one (self, fd);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      break;
    /* EMFILE, ENFILE, ENOBUFS, ENOMEM: back off and retry; never stop listening. */
    g_debug ("accept: %s: retrying in %d ms", g_strerror (errno), ACCEPT_BACKOFF_MS);
    if (errno == EMFILE || errno == ENFILE)
      accept_shed_one (self);
    accept_pause (self);
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

static void
accept_watch (PtServer *self)
{
  self->accept_source = g_socket_create_source (self->listener, G_IO_IN, NULL);
  g_source_set_callback (self->accept_source, (GSourceFunc) (void (*) (void)) on_acceptable, self,
      NULL);
  g_source_attach (self->accept_source, self->context);
}

static gboolean
accept_resume (gpointer user_data)
{
  PtServer *self = user_data;
  g_clear_pointer (&self->accept_retry, g_source_unref);
  if (self->spare_fd < 0)
    self->spare_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  accept_watch (self);
  return G_SOURCE_REMOVE;
}

/* Every socket of the server stays this far below the descriptor limit:
 * room for the listening socket, epoll, the main context, logs, a dup at
 * each upgrade. */
static guint
socket_cap (PtServer *self)
{
  struct rlimit rl;
  if (getrlimit (RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
    return G_MAXUINT;
  rlim_t reserve = MAX (32, rl.rlim_cur / 16);
  return rl.rlim_cur > reserve ? (guint) MIN (rl.rlim_cur - reserve, G_MAXUINT) : 1;
}

/* Serves /status, the browser viewer (pt-web.c) and WebSocket upgrades on
 * @addr. */
gboolean
pt_http_listen (PtServer *self, GSocketAddress *addr, GError **error)
{
  self->context = g_main_context_ref_thread_default ();
  self->listener = g_socket_new (g_socket_address_get_family (addr), G_SOCKET_TYPE_STREAM,
      G_SOCKET_PROTOCOL_TCP, error);
  if (!self->listener)
    return FALSE;
  g_socket_set_listen_backlog (self->listener, PT_LISTEN_BACKLOG);
  if (!g_socket_bind (self->listener, addr, TRUE, error) ||
      !g_socket_listen (self->listener, error)) {
    g_clear_object (&self->listener);
    return FALSE;
  }
  self->max_sockets = socket_cap (self);
  self->spare_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  self->tls_cancel = g_cancellable_new ();
  self->http_conns = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) http_conn_free);
  self->soup = soup_server_new ("server-header", "peertree-server", NULL);
  soup_server_add_handler (self->soup, "/status", on_status, self, NULL);
  soup_server_add_handler (self->soup, "/metrics", on_metrics, self, NULL);
  soup_server_add_handler (self->soup, "/dashboard", on_dashboard, self, NULL);
  pt_web_init (self, self->soup);
  soup_server_add_handler (self->soup, NULL, on_http, self, NULL);
  g_signal_connect (self->soup, "request-started", G_CALLBACK (on_request_started), self);
  accept_watch (self);
  return TRUE;
}

/* Stops accepting; libsoup closes its connections. */
void
pt_http_stop (PtServer *self)
{
  if (self->accept_source) {
    g_source_destroy (self->accept_source);
    g_clear_pointer (&self->accept_source, g_source_unref);
  }
  if (self->accept_retry) {
    g_source_destroy (self->accept_retry);
    g_clear_pointer (&self->accept_retry, g_source_unref);
  }
  if (self->tls_cancel) {
    g_cancellable_cancel (self->tls_cancel);
    g_clear_object (&self->tls_cancel);
  }
  if (self->soup) {
    soup_server_disconnect (self->soup);
    g_clear_object (&self->soup);
  }
  g_clear_pointer (&self->http_conns, g_hash_table_unref);
  if (self->listener) {
    g_socket_close (self->listener, NULL);
    g_clear_object (&self->listener);
  }
  if (self->spare_fd >= 0) {
    close (self->spare_fd);
    self->spare_fd = -1;
  }
}
