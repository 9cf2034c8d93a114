/* idle-clients — many idle WebSocket clients on one epoll thread.
 *
 * GLib's main loop prepares, checks and polls every source on each iteration,
 * so a load generator holding thousands of libsoup connections in one
 * GMainContext would spend its time scanning them. The idle clients of
 * bench/signalling therefore live here: raw non-blocking sockets, a minimal
 * RFC 6455 client (masked frames, pongs to pings) and one thread.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once
#include <glib.h>

typedef struct _IdleClients IdleClients;

/* sio: engine.io 3 / socket.io 2 (ready on the "40" packet, pings every 20 s);
 * otherwise peertree (hello, ready on its reply). Ids are PREFIX-0 .. PREFIX-(n-1). */
IdleClients *idle_clients_start (gboolean sio, guint port, guint n, const char *prefix);
guint idle_clients_ready (IdleClients *self);
guint idle_clients_failed (IdleClients *self);
/* Sends @text (one text frame) from every ready client; returns at once. */
void idle_clients_send_all (IdleClients *self, const char *text);
/* Replies to the frame sent with send_all containing "parent" (a join's
 * reply), and errors ("ok":false) since. */
guint idle_clients_joined (IdleClients *self);
guint idle_clients_errors (IdleClients *self);
/* Monotonic µs of each such reply, in arrival order (valid once joined stops moving). */
const gint64 *idle_clients_join_times (IdleClients *self);
guint idle_clients_closed (IdleClients *self);
/* Starts no further connection (those under way finish). */
void idle_clients_stop_connecting (IdleClients *self);
void idle_clients_stop (IdleClients *self);
