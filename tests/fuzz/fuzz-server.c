/* libFuzzer harness: the server's message and frame handling.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Each input runs on a fresh server (listening on 127.0.0.1, port 0, never
 * connected to) with FUZZ_CLIENTS fake clients: real PtConns made by
 * pt_conn_new() on one end of a socketpair each, the harness holding the
 * other end. The input is a list of records:
 *
 *   byte 0   bits 0-1 client index, bit 2 binary, bits 4-5 the operation
 *   byte 1-2 payload length, little endian (cut to what is left)
 *   payload
 *
 * Operations:
 *   0  a whole WebSocket message: handed to the connection's receive
 *      function (pt_request_receive: dispatch, or the binary-frame handler),
 *      as pt-ws.c does for a message wslay assembled
 *   1  raw bytes written to the client's socket: WebSocket framing through
 *      pt-ws.c and wslay (frames must be masked, as a client's are)
 *   2  the virtual clock moves on by payload[0] * 250 ms, then the sweep runs
 *   3  the client's socket is closed by the client; the next record for this
 *      index opens a new connection
 *
 * FUZZ_VERBOSE=1 in the environment prints what is left at the end of each input.
 *
 * After each record the server's main context runs until idle, and what the
 * server sent every client is read and dropped. Outside libFuzzer (the
 * fuzz-replay test) replay-main.c feeds files to LLVMFuzzerTestOneInput.
 */
#include "pt-server-private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FUZZ_CLIENTS 4

typedef struct {
  PtConn *conn;
  int fd; /* the client's end, -1 if none */
} FakeClient;

static void
drain (FakeClient *clients)
{
  char buf[65536];
  for (int i = 0; i < FUZZ_CLIENTS; i++) {
    if (clients[i].fd < 0)
      continue;
    while (read (clients[i].fd, buf, sizeof buf) > 0)
      ;
  }
}

static void
run_loop (GMainContext *ctx, FakeClient *clients)
{
  for (int n = 0; n < 64; n++) {
    drain (clients);
    if (!g_main_context_iteration (ctx, FALSE))
      break;
  }
  drain (clients);
}

static gboolean
conn_alive (PtServer *server, PtConn *c)
{
  return c && g_hash_table_contains (server->conns, c);
}

static void
open_client (PtServer *server, FakeClient *fc)
{
  int sv[2];
  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0)
    abort ();
  fc->fd = sv[1];
  fc->conn = pt_conn_new (server, sv[0], NULL, 0, pt_request_receive);
}

static void
log_nothing (const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data)
{
  /* A critical or a warning is a bug the fuzzer should report. */
  if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING | G_LOG_LEVEL_ERROR)) {
    fprintf (stderr, "%s: %s\n", domain ? domain : "", message);
    abort ();
  }
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static gboolean initialized;
  if (!initialized) {
    g_log_set_default_handler (log_nothing, NULL);
    initialized = TRUE;
  }
  GMainContext *ctx = g_main_context_default ();
  PtServer *server = pt_server_new ();
  g_object_set (server, "host", "127.0.0.1", "port", 0, NULL);
  g_autoptr (GError) error = NULL;
  if (!pt_server_listen (server, &error)) {
    fprintf (stderr, "listen: %s\n", error->message);
    abort ();
  }
  pt_clock_offset = 0;

  FakeClient clients[FUZZ_CLIENTS];
  for (int i = 0; i < FUZZ_CLIENTS; i++)
    open_client (server, &clients[i]);

  size_t pos = 0;
  while (pos + 3 <= size) {
    guint8 head = data[pos];
    size_t len = data[pos + 1] | (size_t) data[pos + 2] << 8;
    pos += 3;
    if (len > size - pos)
      len = size - pos;
    const guint8 *payload = data + pos;
    pos += len;

    FakeClient *fc = &clients[head & 3];
    gboolean binary = (head >> 2) & 1;
    int op = (head >> 4) & 3;
    if (fc->fd < 0)
      open_client (server, fc);

    switch (op) {
    case 0:
      if (conn_alive (server, fc->conn) && !fc->conn->gone) {
        fc->conn->last_seen = pt_now ();
        fc->conn->receive (fc->conn, binary, payload, len);
      }
      break;
    case 1:
      /* EAGAIN: the server stopped reading; EPIPE: it closed the connection */
      if (len && send (fc->fd, payload, len, MSG_NOSIGNAL) < 0 && errno != EAGAIN &&
          errno != EPIPE && errno != ECONNRESET)
        abort ();
      break;
    case 2:
      pt_clock_offset += (gint64) (len ? payload[0] : 1) * 250 * 1000;
      pt_server_sweep_now (server);
      break;
    case 3:
      close (fc->fd);
      fc->fd = -1;
      fc->conn = NULL;
      break;
    }
    run_loop (ctx, clients);
  }

  if (g_getenv ("FUZZ_VERBOSE"))
    fprintf (stderr, "%u clients, %u trees, %u connections at the end\n",
        g_hash_table_size (server->clients), g_hash_table_size (server->trees),
        g_hash_table_size (server->conns));
  pt_server_stop (server);
  g_object_unref (server);
  for (int i = 0; i < FUZZ_CLIENTS; i++)
    if (clients[i].fd >= 0)
      close (clients[i].fd);
  while (g_main_context_iteration (ctx, FALSE))
    ;
  pt_clock_offset = 0;
  return 0;
}
