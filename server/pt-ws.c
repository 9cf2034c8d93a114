/* peertree-server — WebSocket connections on one epoll set (see pt-ws.h).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "pt-ws.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

#define CLOSE_WAIT_US (2 * G_USEC_PER_SEC)
#define MAX_EVENTS 256
#define READ_CHUNK 16384
/* Bytes read from one connection per loop turn: one client sending without
 * pause cannot keep the loop from the others. */
#define READ_BUDGET (4 * READ_CHUNK)

typedef enum { WS_OPEN, WS_CLOSING, WS_DONE } WsState;

struct _PtWs {
  PtWsLoop *loop;
  int fd;
  /* TLS (pt_ws_new_stream): the bytes go through these instead of the raw
   * socket; @fd, a duplicate of the socket's, only drives epoll. */
  GIOStream *stream;
  GPollableInputStream *in;
  GPollableOutputStream *out_stream;
  wslay_event_context_ptr ctx;
  const PtWsCallbacks *cb;
  gpointer user_data;
  WsState state;
  gboolean notified;      /* closed callback called */
  gboolean dirty;         /* in loop->dirty */
  gboolean want_out;      /* EPOLLOUT registered */
  gint64 close_deadline;
  GByteArray *out;        /* bytes framed but not yet written */
  gsize out_off;
  guint8 *initial;        /* bytes read before the handover */
  gsize initial_len, initial_off;
  gushort close_code;
  gsize read_left;        /* of READ_BUDGET, in this turn */
  gsize max_buffered;     /* past it, the peer does not read: stalled */
  gboolean stalled;       /* no longer read from (the owner closes it) */
};

struct _PtWsLoop {
  GSource source;         /* must be first */
  int epfd;
  gpointer tag;
  GPtrArray *dirty;       /* PtWs* with output to write */
  GPtrArray *finished;    /* PtWs* whose closed callback is due */
  GPtrArray *pending;     /* PtWs* with bytes from the handover to read */
  GHashTable *closing;    /* PtWs* set, waiting for the peer's close */
};

/* ------------------------------------------------------------------------ */
/* wslay callbacks                                                          */

static void queue_pending (PtWs *ws);

/* TLS: decrypted bytes may wait in the TLS layer with nothing left on the
 * socket, so epoll would not wake us again for them: a connection that ran
 * out of budget is read again on the next turn (loop->pending). */
static ssize_t
stream_recv (PtWs *ws, wslay_event_context_ptr ctx, uint8_t *buf, size_t len)
{
  g_autoptr (GError) error = NULL;
  gssize r = g_pollable_input_stream_read_nonblocking (ws->in, buf, MIN (len, ws->read_left),
      NULL, &error);
  if (r > 0) {
    ws->read_left -= r;
    if (ws->read_left == 0)
      queue_pending (ws);
    return r;
  }
  if (r < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
    wslay_event_set_error (ctx, WSLAY_ERR_WOULDBLOCK);
  else
    wslay_event_set_error (ctx, WSLAY_ERR_CALLBACK_FAILURE); /* EOF or error */
  return -1;
}

static ssize_t
recv_cb (wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user_data)
{
  PtWs *ws = user_data;
  if (ws->initial) {
    gsize n = MIN (len, ws->initial_len - ws->initial_off);
    memcpy (buf, ws->initial + ws->initial_off, n);
    ws->initial_off += n;
    if (ws->initial_off == ws->initial_len)
      g_clear_pointer (&ws->initial, g_free);
    return n;
  }
  if (ws->read_left == 0) {
    /* The rest on the next turn (epoll is level-triggered). */
    wslay_event_set_error (ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  if (ws->stream)
    return stream_recv (ws, ctx, buf, len);
  ssize_t r = recv (ws->fd, buf, MIN (len, ws->read_left), MSG_DONTWAIT);
  if (r > 0) {
    ws->read_left -= r;
    return r;
  }
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    wslay_event_set_error (ctx, WSLAY_ERR_WOULDBLOCK);
  else
    wslay_event_set_error (ctx, WSLAY_ERR_CALLBACK_FAILURE); /* EOF or error */
  return -1;
}

static ssize_t
send_cb (wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user_data)
{
  PtWs *ws = user_data;
  if (!ws->out)
    ws->out = g_byte_array_new ();
  g_byte_array_append (ws->out, data, len);
  return len;
}

static void
msg_cb (wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *user_data)
{
  PtWs *ws = user_data;
  switch (arg->opcode) {
    case WSLAY_TEXT_FRAME:
    case WSLAY_BINARY_FRAME:
      if (ws->state == WS_OPEN)
        ws->cb->message (ws, arg->opcode == WSLAY_BINARY_FRAME, arg->msg, arg->msg_length,
            ws->user_data);
      break;
    case WSLAY_PING:
      /* wslay has queued the pong: the owner charges the frame to its rate. */
      if (ws->cb->control)
        ws->cb->control (ws, ws->user_data);
      break;
    case WSLAY_PONG:
      if (ws->cb->control && !ws->cb->control (ws, ws->user_data))
        break;
      if (ws->cb->pong)
        ws->cb->pong (ws, ws->user_data);
      break;
    case WSLAY_CONNECTION_CLOSE:
      ws->close_code = arg->status_code ? arg->status_code : 1005;
      break;
    default:
      break;
  }
}

static const struct wslay_event_callbacks wslay_callbacks = {
  recv_cb, send_cb, NULL, NULL, NULL, NULL, msg_cb
};

/* Read again on the next turn, once. */
static void
queue_pending (PtWs *ws)
{
  if (!g_ptr_array_find (ws->loop->pending, ws, NULL))
    g_ptr_array_add (ws->loop->pending, ws);
}

/* ------------------------------------------------------------------------ */
/* Output                                                                   */

static void
mark_dirty (PtWs *ws)
{
  if (!ws->dirty && ws->state != WS_DONE) {
    ws->dirty = TRUE;
    g_ptr_array_add (ws->loop->dirty, ws);
  }
}

static void
update_events (PtWs *ws)
{
  struct epoll_event ev = { .events = (ws->stalled ? 0 : EPOLLIN | EPOLLRDHUP) |
    (ws->want_out ? EPOLLOUT : 0), .data.ptr = ws };
  epoll_ctl (ws->loop->epfd, EPOLL_CTL_MOD, ws->fd, &ev);
}

static void
set_want_out (PtWs *ws, gboolean want)
{
  if (ws->want_out == want)
    return;
  ws->want_out = want;
  update_events (ws);
}

/* More than max-buffered bytes wait for a peer that does not read: it is not
 * read from any more (its pings would make more pongs), and its owner is told. */
static void
check_stalled (PtWs *ws)
{
  if (ws->stalled || ws->state != WS_OPEN || pt_ws_get_buffered (ws) <= ws->max_buffered)
    return;
  ws->stalled = TRUE;
  update_events (ws);
  if (ws->cb->stalled)
    ws->cb->stalled (ws, ws->user_data);
}

/* Schedules the closed callback (from the loop's dispatch). */
static void
finish (PtWs *ws)
{
  if (ws->state == WS_DONE)
    return;
  ws->state = WS_DONE;
  g_hash_table_remove (ws->loop->closing, ws);
  epoll_ctl (ws->loop->epfd, EPOLL_CTL_DEL, ws->fd, NULL);
  g_ptr_array_add (ws->loop->finished, ws);
}

/* Frames what wslay has queued and writes as much as the socket takes. */
static void
flush (PtWs *ws)
{
  if (ws->state == WS_DONE)
    return;
  if (wslay_event_want_write (ws->ctx))
    wslay_event_send (ws->ctx);
  while (ws->out && ws->out_off < ws->out->len) {
    if (ws->stream) {
      /* TLS: a write that would block is retried, with the same bytes, on
       * EPOLLOUT. */
      g_autoptr (GError) error = NULL;
      gssize w = g_pollable_output_stream_write_nonblocking (ws->out_stream,
          ws->out->data + ws->out_off, ws->out->len - ws->out_off, NULL, &error);
      if (w > 0) {
        ws->out_off += w;
        continue;
      }
      if (w < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
        set_want_out (ws, TRUE);
        return;
      }
      finish (ws);
      return;
    }
    ssize_t w = send (ws->fd, ws->out->data + ws->out_off, ws->out->len - ws->out_off,
        MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w > 0) {
      ws->out_off += w;
      continue;
    }
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      set_want_out (ws, TRUE);
      return;
    }
    if (w < 0 && errno == EINTR)
      continue;
    finish (ws); /* the peer is gone */
    return;
  }
  /* Drained: an idle connection keeps no buffer. */
  g_clear_pointer (&ws->out, g_byte_array_unref);
  ws->out_off = 0;
  set_want_out (ws, FALSE);
  /* Our close frame is out: stop writing, wait for the peer's close. */
  if (ws->state == WS_CLOSING && wslay_event_get_close_sent (ws->ctx)) {
    shutdown (ws->fd, SHUT_WR);
    if (wslay_event_get_close_received (ws->ctx))
      finish (ws);
  }
}

/* ------------------------------------------------------------------------ */
/* Loop                                                                     */

static void
on_readable (PtWs *ws)
{
  if (ws->stalled) {
    /* Not read any more: only a hang-up or an error wakes it (epoll always
     * reports them); the peer is gone. */
    finish (ws);
    return;
  }
  ws->read_left = READ_BUDGET;
  int r = wslay_event_recv (ws->ctx);
  if (ws->state == WS_DONE)
    return;
  if (r != 0) {
    finish (ws);
    return;
  }
  if (wslay_event_get_close_received (ws->ctx) || !wslay_event_get_read_enabled (ws->ctx)) {
    /* The peer closed (wslay queued the answering close frame), or broke the
     * protocol or the size limit (wslay queued a close with the reason and
     * stopped reading): send it, then we are done. */
    ws->state = WS_CLOSING;
    flush (ws);
    finish (ws);
    return;
  }
  mark_dirty (ws); /* pongs, and anything the callbacks sent */
  check_stalled (ws);
}

static gboolean
loop_prepare (GSource *source, gint *timeout)
{
  PtWsLoop *loop = (PtWsLoop *) source;
  /* Write everything queued during this iteration, in one send per socket. */
  for (guint i = 0; i < loop->dirty->len; i++) {
    PtWs *ws = loop->dirty->pdata[i];
    ws->dirty = FALSE;
    flush (ws);
  }
  g_ptr_array_set_size (loop->dirty, 0);
  *timeout = g_hash_table_size (loop->closing) ? 500 : -1;
  return loop->finished->len > 0 || loop->pending->len > 0;
}

static gboolean
loop_check (GSource *source)
{
  PtWsLoop *loop = (PtWsLoop *) source;
  return loop->finished->len > 0 || loop->pending->len > 0 ||
      g_hash_table_size (loop->closing) > 0 ||
      g_source_query_unix_fd (source, loop->tag) != 0;
}

static gboolean
loop_dispatch (GSource *source, GSourceFunc callback, gpointer user_data)
{
  PtWsLoop *loop = (PtWsLoop *) source;
  while (loop->pending->len) {
    PtWs *ws = g_ptr_array_steal_index (loop->pending, 0);
    if (ws->state != WS_DONE)
      on_readable (ws);
  }
  struct epoll_event events[MAX_EVENTS];
  int n = epoll_wait (loop->epfd, events, MAX_EVENTS, 0);
  for (int i = 0; i < n; i++) {
    PtWs *ws = events[i].data.ptr;
    if (ws->state == WS_DONE)
      continue;
    if (events[i].events & EPOLLOUT)
      flush (ws);
    if (ws->state != WS_DONE && (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
      on_readable (ws);
  }
  /* Closes that waited too long for the peer. */
  if (g_hash_table_size (loop->closing)) {
    gint64 now = g_get_monotonic_time ();
    g_autoptr (GPtrArray) late = g_ptr_array_new ();
    GHashTableIter it;
    gpointer key;
    g_hash_table_iter_init (&it, loop->closing);
    while (g_hash_table_iter_next (&it, &key, NULL))
      if (((PtWs *) key)->close_deadline <= now)
        g_ptr_array_add (late, key);
    for (guint i = 0; i < late->len; i++)
      finish (late->pdata[i]);
  }
  /* Closed callbacks last: the owner may free the PtWs. */
  while (loop->finished->len) {
    PtWs *ws = g_ptr_array_steal_index (loop->finished, 0);
    if (!ws->notified) {
      ws->notified = TRUE;
      ws->cb->closed (ws, ws->user_data);
    }
  }
  return G_SOURCE_CONTINUE;
}

static void
loop_finalize (GSource *source)
{
  PtWsLoop *loop = (PtWsLoop *) source;
  close (loop->epfd);
  g_ptr_array_unref (loop->dirty);
  g_ptr_array_unref (loop->finished);
  g_ptr_array_unref (loop->pending);
  g_hash_table_unref (loop->closing);
}

static GSourceFuncs loop_funcs = { loop_prepare, loop_check, loop_dispatch, loop_finalize, NULL,
  NULL };

PtWsLoop *
pt_ws_loop_new (GMainContext *context)
{
  PtWsLoop *loop = (PtWsLoop *) g_source_new (&loop_funcs, sizeof (PtWsLoop));
  loop->epfd = epoll_create1 (EPOLL_CLOEXEC);
  loop->dirty = g_ptr_array_new ();
  loop->finished = g_ptr_array_new ();
  loop->pending = g_ptr_array_new ();
  loop->closing = g_hash_table_new (NULL, NULL);
  loop->tag = g_source_add_unix_fd (&loop->source, loop->epfd, G_IO_IN);
  g_source_set_name (&loop->source, "peertree websockets");
  g_source_attach (&loop->source, context);
  return loop;
}

void
pt_ws_loop_free (PtWsLoop *loop)
{
  g_source_destroy (&loop->source);
  g_source_unref (&loop->source);
}

/* ------------------------------------------------------------------------ */
/* Connections                                                              */

PtWs *
pt_ws_new (PtWsLoop *loop, int fd, const guint8 *initial, gsize initial_len,
    guint64 max_message_size, const PtWsCallbacks *callbacks, gpointer user_data)
{
  PtWs *ws = g_new0 (PtWs, 1);
  ws->loop = loop;
  ws->fd = fd;
  ws->cb = callbacks;
  ws->user_data = user_data;
  ws->close_code = 1006;
  ws->max_buffered = G_MAXSIZE;
  if (initial_len)
    ws->initial = g_memdup2 (initial, initial_len);
  ws->initial_len = initial_len;
  wslay_event_context_server_init (&ws->ctx, &wslay_callbacks, ws);
  wslay_event_config_set_max_recv_msg_length (ws->ctx, max_message_size);
  struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = ws };
  epoll_ctl (loop->epfd, EPOLL_CTL_ADD, fd, &ev);
  /* Frames that came with the upgrade request are read on the next turn,
   * once the owner holds the PtWs. */
  if (initial_len)
    g_ptr_array_add (loop->pending, ws);
  return ws;
}

PtWs *
pt_ws_new_stream (PtWsLoop *loop, GIOStream *stream, int fd, const guint8 *initial,
    gsize initial_len, guint64 max_message_size, const PtWsCallbacks *callbacks,
    gpointer user_data)
{
  PtWs *ws = pt_ws_new (loop, fd, initial, initial_len, max_message_size, callbacks, user_data);
  ws->stream = g_object_ref (stream);
  ws->in = G_POLLABLE_INPUT_STREAM (g_io_stream_get_input_stream (stream));
  ws->out_stream = G_POLLABLE_OUTPUT_STREAM (g_io_stream_get_output_stream (stream));
  /* The TLS layer may hold bytes read with the upgrade request. */
  queue_pending (ws);
  return ws;
}

void
pt_ws_free (PtWs *ws)
{
  if (!ws)
    return;
  PtWsLoop *loop = ws->loop;
  if (ws->state != WS_DONE) {
    flush (ws); /* best effort: a close frame queued just before */
    epoll_ctl (loop->epfd, EPOLL_CTL_DEL, ws->fd, NULL);
  }
  g_ptr_array_remove_fast (loop->dirty, ws);
  g_ptr_array_remove_fast (loop->finished, ws);
  g_ptr_array_remove_fast (loop->pending, ws);
  g_hash_table_remove (loop->closing, ws);
  close (ws->fd);
  /* TLS: no close_notify (it could block); dropping the last reference
   * closes the socket. */
  g_clear_object (&ws->stream);
  wslay_event_context_free (ws->ctx);
  if (ws->out)
    g_byte_array_unref (ws->out);
  g_free (ws->initial);
  g_free (ws);
}

gboolean
pt_ws_is_open (PtWs *ws)
{
  return ws->state == WS_OPEN;
}

int
pt_ws_get_fd (PtWs *ws)
{
  return ws->fd;
}

void
pt_ws_send (PtWs *ws, gboolean binary, const void *data, gsize len)
{
  if (ws->state != WS_OPEN)
    return;
  struct wslay_event_msg msg = { binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME, data, len };
  if (wslay_event_queue_msg (ws->ctx, &msg) == 0)
    mark_dirty (ws);
}

void
pt_ws_ping (PtWs *ws)
{
  if (ws->state != WS_OPEN)
    return;
  struct wslay_event_msg msg = { WSLAY_PING, NULL, 0 };
  if (wslay_event_queue_msg (ws->ctx, &msg) == 0)
    mark_dirty (ws);
}

void
pt_ws_close (PtWs *ws, gushort code, const char *reason)
{
  if (ws->state != WS_OPEN)
    return;
  gsize len = reason ? MIN (strlen (reason), 120) : 0;
  wslay_event_queue_close (ws->ctx, code, (const uint8_t *) reason, len);
  ws->state = WS_CLOSING;
  ws->close_deadline = g_get_monotonic_time () + CLOSE_WAIT_US;
  g_hash_table_add (ws->loop->closing, ws);
  mark_dirty (ws);
}

/* What the kernel has not taken yet: framed bytes, and the messages (pongs
 * included) still in wslay's queues. */
gsize
pt_ws_get_buffered (PtWs *ws)
{
  return (ws->out ? ws->out->len - ws->out_off : 0) + wslay_event_get_queued_msg_length (ws->ctx);
}

void
pt_ws_set_max_buffered (PtWs *ws, gsize max_buffered)
{
  ws->max_buffered = max_buffered;
}

gushort
pt_ws_get_close_code (PtWs *ws)
{
  return ws->close_code;
}
