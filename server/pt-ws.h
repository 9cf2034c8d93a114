/* peertree-server — WebSocket connections on one epoll set.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * libsoup does the HTTP upgrade; the socket is then handed to a PtWs, which
 * frames with wslay and is driven by a single GSource wrapping an epoll
 * descriptor. A main-loop iteration therefore costs what the *ready* sockets
 * cost, not what every connected socket costs (GLib's poll()-based loop walks
 * every source and descriptor on every iteration). Outgoing frames are
 * buffered per connection and written once per iteration.
 *
 * Everything runs on the GMainContext given to pt_ws_loop_new().
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct _PtWsLoop PtWsLoop;
typedef struct _PtWs PtWs;

typedef struct {
  /* A complete text or binary message. */
  void (*message) (PtWs *ws, gboolean binary, const guint8 *data, gsize len, gpointer user_data);
  /* A pong (answer to pt_ws_ping()). */
  void (*pong) (PtWs *ws, gpointer user_data);
  /* A control frame (ping or pong) arrived; FALSE ignores it (the owner
   * may close the connection from here). May be NULL. */
  gboolean (*control) (PtWs *ws, gpointer user_data);
  /* More than the max-buffered bytes wait for the peer: it is no longer read
   * from. May be NULL. */
  void (*stalled) (PtWs *ws, gpointer user_data);
  /* The connection is closed (peer close, error, end of a pt_ws_close()).
   * Called once, from the loop, never from inside a PtWs call; the PtWs
   * stays valid until pt_ws_free(). */
  void (*closed) (PtWs *ws, gpointer user_data);
} PtWsCallbacks;

PtWsLoop *pt_ws_loop_new (GMainContext *context);
/* Every PtWs of the loop must have been freed. */
void pt_ws_loop_free (PtWsLoop *loop);

/* Takes @fd (a connected, upgraded socket). @initial holds bytes already
 * read from it past the HTTP request. */
PtWs *pt_ws_new (PtWsLoop *loop, int fd, const guint8 *initial, gsize initial_len,
    guint64 max_message_size, const PtWsCallbacks *callbacks, gpointer user_data);
/* TLS: the bytes go through @stream (pollable: a GTlsConnection), while
 * @fd, a duplicate of its socket's descriptor (taken, closed at free), only
 * tells epoll when to try. The plain path (pt_ws_new) stays on the raw
 * socket. @stream is referenced; it is closed by dropping it at free. */
PtWs *pt_ws_new_stream (PtWsLoop *loop, GIOStream *stream, int fd, const guint8 *initial,
    gsize initial_len, guint64 max_message_size, const PtWsCallbacks *callbacks,
    gpointer user_data);
void pt_ws_free (PtWs *ws);

gboolean pt_ws_is_open (PtWs *ws);
int pt_ws_get_fd (PtWs *ws);
void pt_ws_send (PtWs *ws, gboolean binary, const void *data, gsize len);
void pt_ws_ping (PtWs *ws);
/* Sends a close frame, then waits (at most 2 s) for the peer to close. */
void pt_ws_close (PtWs *ws, gushort code, const char *reason);
/* Bytes queued for the peer and not yet accepted by the kernel: framed, and
 * still in wslay's queue (messages, pongs). */
gsize pt_ws_get_buffered (PtWs *ws);
/* Past @max_buffered (see pt_ws_get_buffered()) after a read, the
 * connection is no longer read and the stalled callback runs. */
void pt_ws_set_max_buffered (PtWs *ws, gsize max_buffered);
/* The close code received from the peer (1006 if none). */
gushort pt_ws_get_close_code (PtWs *ws);

G_END_DECLS
