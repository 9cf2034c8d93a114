/* sigbench — signalling load generator for bench/signalling/run.
 *
 * One program drives both servers over plain WebSockets (libsoup 3), so the
 * client side costs the same whichever server is measured:
 *   --proto pt   peertree-server, docs/protocol.md (hello, emit, create, join)
 *   --proto sio  the seed's Node server (@gigasource/socket.io-p2p-plugin on
 *                socket.io 2.x): engine.io 3 over the websocket transport, the
 *                same frames socket.io-client sends with transports: ['websocket']
 *                (42["P2P_EMIT",target,event,[args],null] for emitTo without ack).
 *
 * Modes (each prints one line "RESULT key=value ..." on stdout; progress on stderr):
 *   sigbench emit  --proto P --url U --pid SERVER_PID [--pairs 50] [--count 2000]
 *                  [--window 8] [--idle 0] [--time-limit 20] [--rate 1000] [--rate-time 3]
 *       N sender/receiver pairs; sender i emits to receiver i only. Phase 1
 *       (throughput): closed loop, each pair keeps --window messages in flight,
 *       --count messages per pair or --time-limit seconds, whichever first.
 *       Phase 2 (latency at a fixed load): open loop, --rate messages/s in total,
 *       spread over the pairs, for --rate-time seconds. Both phases read the
 *       server process's utime+stime (/proc/PID/stat) before and after.
 *   sigbench scale --proto P --url U --pid SERVER_PID [--clients 10000] [--join]
 *       Connects --clients idle clients (hello'd / socket.io-connected), reads the
 *       server's RSS before and after; with --join (pt only) one more client
 *       creates a tree and every idle client joins it at once.
 *
 * Every loop is bounded in count and in time; only loopback URLs are accepted.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "idle-clients.h"

#include <libsoup/soup.h>
#include <glib-unix.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum { PROTO_PT, PROTO_SIO } Proto;
typedef enum { ROLE_IDLE, ROLE_SENDER, ROLE_RECEIVER, ROLE_ROOT } Role;

typedef struct {
  SoupWebsocketConnection *ws;
  char *id;
  Role role;
  guint pair;
  gboolean ready, failed;
  gboolean joined;
} Conn;

static struct {
  Proto proto;
  char *url;          /* ws://127.0.0.1:PORT (pt) or http://127.0.0.1:PORT (sio) */
  int pid;
  SoupSession *session;
  GPtrArray *conns;   /* Conn* */
  guint connecting, ready_count, failed_count, next_to_open, total_to_open;
  guint64 next_req;

  /* emit */
  guint pairs, count, window;
  Conn **senders, **receivers;
  guint *sent, *recvd;
  guint64 total_sent, total_recvd, errors;
  gboolean sending;
  gint64 deadline;
  GArray *lat;        /* gint64 µs, one per received message while recording */
  gboolean recording;
  char first_error[256];

  /* scale / join */
  guint64 joins_replied;
  GArray *join_times; /* gint64 µs of each join reply */
} B;

/* ------------------------------------------------------------------------ */

static double
proc_cpu_seconds (int pid)
{
  char path[64], buf[1024];
  snprintf (path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen (path, "r");
  if (!f)
    return -1;
  size_t n = fread (buf, 1, sizeof buf - 1, f);
  fclose (f);
  buf[n] = 0;
  char *p = strrchr (buf, ')');
  if (!p)
    return -1;
  /* after ") ": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
  unsigned long long ut = 0, st = 0;
  if (sscanf (p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
    return -1;
  return (double) (ut + st) / sysconf (_SC_CLK_TCK);
}

static long
proc_rss_kb (int pid)
{
  char path[64], line[256];
  snprintf (path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen (path, "r");
  if (!f)
    return -1;
  long kb = -1;
  while (fgets (line, sizeof line, f))
    if (sscanf (line, "VmRSS: %ld", &kb) == 1)
      break;
  fclose (f);
  return kb;
}

static void
run_until (gboolean (*done) (void), double seconds)
{
  gint64 end = g_get_monotonic_time () + (gint64) (seconds * G_USEC_PER_SEC);
  while (!done () && g_get_monotonic_time () < end)
    g_main_context_iteration (NULL, TRUE);
}

static gboolean
tick (gpointer data)
{
  return G_SOURCE_CONTINUE; /* wakes run_until so it sees its deadline */
}

static void
send_text (Conn *c, const char *text)
{
  if (c->ws && soup_websocket_connection_get_state (c->ws) == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_send_text (c->ws, text);
}

static void
note_error (const char *what, const char *text, gsize len)
{
  B.errors++;
  if (!B.first_error[0])
    snprintf (B.first_error, sizeof B.first_error, "%s: %.*s", what, (int) MIN (len, 200), text);
}

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */

static void
send_emit (guint pair, gint64 now)
{
  Conn *s = B.senders[pair];
  char buf[256];
  guint seq = B.sent[pair]++;
  if (B.proto == PROTO_PT)
    snprintf (buf, sizeof buf,
        "{\"type\":\"emit\",\"id\":%" G_GUINT64_FORMAT ",\"noReply\":true,\"to\":\"%s\",\"event\":\"m\",\"args\":[%u,%" G_GINT64_FORMAT "]}",
        ++B.next_req, B.receivers[pair]->id, seq, now);
  else
    snprintf (buf, sizeof buf, "42[\"P2P_EMIT\",\"%s\",\"m\",[%u,%" G_GINT64_FORMAT "],null]",
        B.receivers[pair]->id, seq, now);
  send_text (s, buf);
  B.total_sent++;
}

/* Reads the two numbers following @marker: [seq, sent-at µs]. */
static gboolean
parse_args (const char *text, const char *marker, gint64 *sent_at)
{
  const char *p = strstr (text, marker);
  if (!p)
    return FALSE;
  char *end;
  p += strlen (marker);
  g_ascii_strtoull (p, &end, 10);
  if (end == p || *end != ',')
    return FALSE;
  *sent_at = g_ascii_strtoll (end + 1, NULL, 10);
  return TRUE;
}

static void
on_delivery (Conn *c, const char *text)
{
  gint64 now = g_get_monotonic_time (), sent_at;
  if (!parse_args (text, B.proto == PROTO_PT ? "\"args\":[" : "\"m\",", &sent_at)) {
    note_error ("unparsable delivery", text, strlen (text));
    return;
  }
  B.recvd[c->pair]++;
  B.total_recvd++;
  if (B.recording) {
    gint64 l = now - sent_at;
    g_array_append_val (B.lat, l);
  }
  /* closed loop: every delivery lets its pair's sender send one more */
  if (B.sending && B.window && B.sent[c->pair] < B.count && now < B.deadline)
    send_emit (c->pair, now);
}

static void
on_message (SoupWebsocketConnection *ws, gint type, GBytes *message, Conn *c)
{
  gsize len;
  const char *data = g_bytes_get_data (message, &len);
  char stackbuf[1024];
  char *heap = NULL;
  const char *text;
  if (type != SOUP_WEBSOCKET_DATA_TEXT)
    return;
  if (len < sizeof stackbuf) {
    memcpy (stackbuf, data, len);
    stackbuf[len] = 0;
    text = stackbuf;
  } else {
    text = heap = g_strndup (data, len);
  }

  if (B.proto == PROTO_PT) {
    if (!c->ready) {
      /* the hello reply (id 0) */
      if (strstr (text, "\"ok\":true")) {
        c->ready = TRUE;
        B.ready_count++;
      } else if (strstr (text, "\"ok\":false")) {
        note_error ("hello", text, len);
        c->failed = TRUE;
        B.failed_count++;
      }
      if (B.connecting)
        B.connecting--;
    } else if (c->role == ROLE_RECEIVER && strstr (text, "\"event\":\"message\"")) {
      on_delivery (c, text);
    } else if (strstr (text, "\"type\":\"reply\"")) {
      if (!strstr (text, "\"ok\":true"))
        note_error ("reply", text, len);
      else if (c->role == ROLE_IDLE && !c->joined && strstr (text, "\"parent\"")) {
        c->joined = TRUE;
        B.joins_replied++;
        gint64 now = g_get_monotonic_time ();
        g_array_append_val (B.join_times, now);
      } else if (c->role == ROLE_ROOT && strstr (text, "\"treeId\"")) {
        c->joined = TRUE;
      }
    }
  } else {
    /* engine.io 3 packet type in the first byte, socket.io packet type next */
    if (text[0] == '4' && text[1] == '0' && !c->ready) {
      c->ready = TRUE;
      B.ready_count++;
      if (B.connecting)
        B.connecting--;
    } else if (text[0] == '4' && text[1] == '2') {
      if (c->role == ROLE_RECEIVER && strncmp (text + 2, "[\"m\",", 5) == 0)
        on_delivery (c, text);
      else if (strstr (text, "SERVER_ERROR"))
        note_error ("server error", text, len);
    } else if (text[0] == '4' && text[1] == '4') {
      note_error ("socket.io error", text, len);
    }
  }
  g_free (heap);
}

/* ------------------------------------------------------------------------ */
/* Connections                                                              */

static void open_next (void);

static void
on_closed (SoupWebsocketConnection *ws, Conn *c)
{
  if (!c->ready && !c->failed) {
    c->failed = TRUE;
    B.failed_count++;
    if (B.connecting)
      B.connecting--;
    open_next ();
  }
  if (c->ready && B.recording)
    note_error ("closed by server", c->id, strlen (c->id));
}

static void
on_connected (GObject *source, GAsyncResult *res, gpointer user_data)
{
  Conn *c = user_data;
  g_autoptr (GError) error = NULL;
  c->ws = soup_session_websocket_connect_finish (B.session, res, &error);
  if (!c->ws) {
    if (!B.first_error[0])
      snprintf (B.first_error, sizeof B.first_error, "connect %s: %s", c->id, error->message);
    c->failed = TRUE;
    B.failed_count++;
    B.connecting--;
    open_next ();
    return;
  }
  soup_websocket_connection_set_max_incoming_payload_size (c->ws, 1 << 20);
  g_signal_connect (c->ws, "message", G_CALLBACK (on_message), c);
  g_signal_connect (c->ws, "closed", G_CALLBACK (on_closed), c);
  if (B.proto == PROTO_PT) {
    char buf[160];
    snprintf (buf, sizeof buf, "{\"type\":\"hello\",\"id\":0,\"version\":1,\"clientId\":\"%s\"}", c->id);
    send_text (c, buf);
  }
  /* sio: ready on the "40" connect packet */
}

static void
open_conn (Conn *c)
{
  g_autofree char *uri = B.proto == PROTO_PT ? g_strdup (B.url) :
      g_strdup_printf ("%s/socket.io/?EIO=3&transport=websocket&clientId=%s", B.url, c->id);
  if (B.proto == PROTO_SIO && g_str_has_prefix (uri, "http://"))
    memcpy (uri, "ws://", 5), memmove (uri + 5, uri + 7, strlen (uri + 7) + 1);
  SoupMessage *msg = soup_message_new ("GET", uri);
  B.connecting++;
  soup_session_websocket_connect_async (B.session, msg, NULL, NULL, G_PRIORITY_DEFAULT, NULL,
      on_connected, c);
  g_object_unref (msg);
}

#define CONNECT_CONCURRENCY 64

static void
open_next (void)
{
  while (B.connecting < CONNECT_CONCURRENCY && B.next_to_open < B.total_to_open)
    open_conn (g_ptr_array_index (B.conns, B.next_to_open++));
}

static Conn *
conn_new (const char *id, Role role, guint pair)
{
  Conn *c = g_new0 (Conn, 1);
  c->id = g_strdup (id);
  c->role = role;
  c->pair = pair;
  g_ptr_array_add (B.conns, c);
  B.total_to_open++;
  return c;
}

static gboolean
all_open (void)
{
  if (B.connecting < CONNECT_CONCURRENCY)
    open_next ();
  return B.ready_count + B.failed_count >= B.total_to_open;
}

/* Opens every conn not yet opened, CONNECT_CONCURRENCY at a time. */
static gboolean
connect_all (double seconds)
{
  gint64 t0 = g_get_monotonic_time ();
  open_next ();
  run_until (all_open, seconds);
  fprintf (stderr, "sigbench: %u/%u clients ready in %.1f s\n", B.ready_count, B.total_to_open,
      (g_get_monotonic_time () - t0) / 1e6);
  return B.ready_count == B.total_to_open;
}

/* engine.io 3: the client pings every pingInterval (25 s) or the server drops it. */
static gboolean
sio_ping (gpointer data)
{
  for (guint i = 0; i < B.conns->len; i++) {
    Conn *c = g_ptr_array_index (B.conns, i);
    if (c->ready)
      send_text (c, "2");
  }
  return G_SOURCE_CONTINUE;
}

/* ------------------------------------------------------------------------ */
/* emit mode                                                                */

static gint64
percentile (GArray *a, double p)
{
  if (a->len == 0)
    return -1;
  guint i = (guint) ceil (p * a->len) - 1;
  return g_array_index (a, gint64, MIN (i, a->len - 1));
}

static int
cmp64 (gconstpointer a, gconstpointer b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;
  return x < y ? -1 : x > y;
}

static gboolean
drained (void)
{
  return B.total_recvd >= B.total_sent;
}

static gboolean
closed_loop_done (void)
{
  if (B.total_recvd >= (guint64) B.pairs * B.count)
    return TRUE;
  return g_get_monotonic_time () >= B.deadline && drained ();
}

typedef struct {
  guint64 msgs;
  double secs, cpu;
  gint64 p50, p99, mean;
} Phase;

static gint64
mean_of (GArray *a)
{
  double sum = 0;
  for (guint i = 0; i < a->len; i++)
    sum += g_array_index (a, gint64, i);
  return a->len ? (gint64) (sum / a->len) : -1;
}

static Phase
closed_loop (guint count, guint window, double limit, gboolean record)
{
  Phase r = { 0 };
  memset (B.sent, 0, B.pairs * sizeof (guint));
  memset (B.recvd, 0, B.pairs * sizeof (guint));
  B.total_sent = B.total_recvd = 0;
  B.count = count;
  B.window = window;
  g_array_set_size (B.lat, 0);
  B.recording = record;
  double cpu0 = proc_cpu_seconds (B.pid);
  gint64 t0 = g_get_monotonic_time ();
  B.deadline = t0 + (gint64) (limit * G_USEC_PER_SEC);
  B.sending = TRUE;
  for (guint w = 0; w < MIN (window, count); w++)
    for (guint i = 0; i < B.pairs; i++)
      send_emit (i, g_get_monotonic_time ());
  run_until (closed_loop_done, limit + 10);
  B.sending = FALSE;
  gint64 t1 = g_get_monotonic_time ();
  double cpu1 = proc_cpu_seconds (B.pid);
  B.recording = FALSE;
  r.msgs = B.total_recvd;
  r.secs = (t1 - t0) / 1e6;
  r.cpu = cpu1 - cpu0;
  g_array_sort (B.lat, cmp64);
  r.p50 = percentile (B.lat, 0.50);
  r.p99 = percentile (B.lat, 0.99);
  r.mean = mean_of (B.lat);
  /* whatever is still in flight (only after a time-out) must not leak into the next phase */
  run_until (drained, 5);
  return r;
}

static guint64 open_target;
static gint64 open_t0;
static double open_rate;
static guint open_rr;

static gboolean
open_loop_tick (gpointer data)
{
  gint64 now = g_get_monotonic_time ();
  guint64 due = (guint64) ((now - open_t0) * open_rate / G_USEC_PER_SEC);
  if (due > open_target)
    due = open_target;
  while (B.total_sent < due) {
    send_emit (open_rr, now);
    open_rr = (open_rr + 1) % B.pairs;
  }
  return B.total_sent < open_target ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

static gboolean
open_loop_done (void)
{
  return B.total_sent >= open_target && drained ();
}

static Phase
open_loop (double rate, double secs)
{
  Phase r = { 0 };
  memset (B.sent, 0, B.pairs * sizeof (guint));
  memset (B.recvd, 0, B.pairs * sizeof (guint));
  B.total_sent = B.total_recvd = 0;
  B.window = 0;
  g_array_set_size (B.lat, 0);
  B.recording = TRUE;
  open_target = (guint64) (rate * secs);
  open_rate = rate;
  open_rr = 0;
  double cpu0 = proc_cpu_seconds (B.pid);
  open_t0 = g_get_monotonic_time ();
  guint src = g_timeout_add (1, open_loop_tick, NULL);
  run_until (open_loop_done, secs + 10);
  if (B.total_sent < open_target)
    g_source_remove (src);
  gint64 t1 = g_get_monotonic_time ();
  double cpu1 = proc_cpu_seconds (B.pid);
  B.recording = FALSE;
  r.msgs = B.total_recvd;
  r.secs = (t1 - open_t0) / 1e6;
  r.cpu = cpu1 - cpu0;
  g_array_sort (B.lat, cmp64);
  r.p50 = percentile (B.lat, 0.50);
  r.p99 = percentile (B.lat, 0.99);
  run_until (drained, 5);
  return r;
}

static guint
url_port (void)
{
  const char *p = strrchr (B.url, ':');
  return p ? (guint) atoi (p + 1) : 0;
}

static IdleClients *idle_for_wait;
static guint idle_wanted;
static double connect_time = 180;

static gboolean
idle_all_open (void)
{
  return idle_clients_ready (idle_for_wait) + idle_clients_failed (idle_for_wait) >= idle_wanted;
}

/* Connects @n idle clients (ids idle-0...) on their own thread. */
static IdleClients *
connect_idle (guint n)
{
  gint64 t0 = g_get_monotonic_time ();
  IdleClients *ic = idle_clients_start (B.proto == PROTO_SIO, url_port (), n, "idle");
  idle_for_wait = ic;
  idle_wanted = n;
  run_until (idle_all_open, connect_time);
  idle_clients_stop_connecting (ic);
  fprintf (stderr, "sigbench: %u/%u idle clients ready in %.1f s\n", idle_clients_ready (ic), n,
      (g_get_monotonic_time () - t0) / 1e6);
  if (idle_clients_ready (ic) != n)
    fprintf (stderr, "sigbench: %u idle clients failed, %u not connected within %.0f s\n",
        idle_clients_failed (ic), n - idle_clients_ready (ic) - idle_clients_failed (ic), connect_time);
  return ic;
}

static int
mode_emit (guint pairs, guint count, guint window, guint idle, double limit, double rate,
    double rate_time)
{
  B.pairs = pairs;
  B.senders = g_new0 (Conn *, pairs);
  B.receivers = g_new0 (Conn *, pairs);
  B.sent = g_new0 (guint, pairs);
  B.recvd = g_new0 (guint, pairs);
  B.lat = g_array_new (FALSE, FALSE, sizeof (gint64));
  char id[64];
  IdleClients *ic = NULL;
  if (idle && idle_clients_ready (ic = connect_idle (idle)) < idle * 9 / 10)
    return 1;
  for (guint i = 0; i < pairs; i++) {
    snprintf (id, sizeof id, "snd-%u", i);
    B.senders[i] = conn_new (id, ROLE_SENDER, i);
    snprintf (id, sizeof id, "rcv-%u", i);
    B.receivers[i] = conn_new (id, ROLE_RECEIVER, i);
  }
  if (!connect_all (60)) {
    fprintf (stderr, "sigbench: could not connect every client (%s)\n", B.first_error);
    return 1;
  }
  /* let the server settle (and Node finish its connection work) */
  gint64 settle = g_get_monotonic_time () + G_USEC_PER_SEC;
  while (g_get_monotonic_time () < settle)
    g_main_context_iteration (NULL, TRUE);

  /* warm-up: 20 messages per pair (JIT, allocator pools) */
  closed_loop (20, 4, 10, FALSE);
  B.errors = 0;

  Phase t = closed_loop (count, window, limit, TRUE);
  fprintf (stderr, "sigbench: throughput phase: %" G_GUINT64_FORMAT " msgs in %.2f s, server cpu %.2f s\n",
      t.msgs, t.secs, t.cpu);
  Phase l = open_loop (rate, rate_time);
  fprintf (stderr, "sigbench: latency phase: %" G_GUINT64_FORMAT " msgs in %.2f s\n", l.msgs, l.secs);
  printf ("RESULT msgs=%" G_GUINT64_FORMAT " secs=%.3f rate=%.0f p50_us=%" G_GINT64_FORMAT
      " p99_us=%" G_GINT64_FORMAT " mean_us=%" G_GINT64_FORMAT " cpu_s=%.3f cpu_us_per_msg=%.2f"
      " lmsgs=%" G_GUINT64_FORMAT " lrate=%.0f lp50_us=%" G_GINT64_FORMAT " lp99_us=%" G_GINT64_FORMAT
      " lcpu_us_per_msg=%.2f errors=%" G_GUINT64_FORMAT " complete=%d\n",
      t.msgs, t.secs, t.msgs / t.secs, t.p50, t.p99, t.mean, t.cpu, t.msgs ? t.cpu * 1e6 / t.msgs : 0,
      l.msgs, l.msgs / l.secs, l.p50, l.p99, l.msgs ? l.cpu * 1e6 / l.msgs : 0, B.errors,
      t.msgs == (guint64) pairs * count);
  if (B.errors)
    fprintf (stderr, "sigbench: %" G_GUINT64_FORMAT " errors, first: %s\n", B.errors, B.first_error);
  if (ic) {
    if (idle_clients_closed (ic))
      fprintf (stderr, "sigbench: %u idle clients were closed by the server\n", idle_clients_closed (ic));
    idle_clients_stop (ic);
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* scale mode                                                               */

static gboolean gc_done;

static void
on_gc (GObject *source, GAsyncResult *res, gpointer data)
{
  g_autoptr (GBytes) body = soup_session_send_and_read_finish (B.session, res, NULL);
  gc_done = TRUE;
}

static gboolean
is_gc_done (void)
{
  return gc_done;
}

/* The seed's server script answers GET /gc by running a full garbage
 * collection, so that its RSS is read at its smallest. */
static void
node_gc (void)
{
  if (B.proto != PROTO_SIO)
    return;
  g_autofree char *uri = g_strdup_printf ("%s/gc", B.url);
  SoupMessage *msg = soup_message_new ("GET", uri);
  gc_done = FALSE;
  soup_session_send_and_read_async (B.session, msg, G_PRIORITY_DEFAULT, NULL, on_gc, NULL);
  g_object_unref (msg);
  run_until (is_gc_done, 30);
}

static void
settle (double seconds)
{
  gint64 end = g_get_monotonic_time () + (gint64) (seconds * G_USEC_PER_SEC);
  while (g_get_monotonic_time () < end)
    g_main_context_iteration (NULL, TRUE);
}

static IdleClients *join_ic;
static guint join_target;

static gboolean
joins_done (void)
{
  return idle_clients_joined (join_ic) + idle_clients_errors (join_ic) >= join_target;
}

static gboolean
root_ready (void)
{
  Conn *root = g_ptr_array_index (B.conns, B.conns->len - 1);
  return root->joined || B.errors;
}

static int
mode_scale (guint clients, gboolean join)
{
  node_gc ();
  settle (0.5);
  long rss0 = proc_rss_kb (B.pid);
  double cpu0 = proc_cpu_seconds (B.pid);
  gint64 t0 = g_get_monotonic_time ();
  IdleClients *ic = connect_idle (clients);
  if (!idle_clients_ready (ic))
    return 1;
  double connect_s = (g_get_monotonic_time () - t0) / 1e6;
  double connect_cpu = proc_cpu_seconds (B.pid) - cpu0;
  settle (1.0);
  node_gc ();
  settle (0.5);
  long rss1 = proc_rss_kb (B.pid);
  guint n = idle_clients_ready (ic);
  /* what the connected, silent clients cost the server per second (keepalive) */
  double idle0 = proc_cpu_seconds (B.pid);
  settle (3.0);
  double idle_cpu = (proc_cpu_seconds (B.pid) - idle0) / 3.0;
  printf ("RESULT wanted=%u clients=%u rss0_kb=%ld rss1_kb=%ld kb_per_client=%.2f connect_s=%.2f"
      " connect_cpu_ms_per_client=%.3f idle_cpu_pct=%.1f", clients, n, rss0, rss1,
      n ? (double) (rss1 - rss0) / n : 0, connect_s, n ? connect_cpu * 1e3 / n : 0,
      idle_cpu * 100);

  if (join && B.proto == PROTO_PT) {
    Conn *root = conn_new ("tree-root", ROLE_ROOT, 0);
    connect_all (10);
    send_text (root, "{\"type\":\"create\",\"id\":1,\"treeId\":\"bench\"}");
    run_until (root_ready, 10);
    join_ic = ic;
    join_target = idle_clients_ready (ic);
    double c0 = proc_cpu_seconds (B.pid);
    gint64 j0 = g_get_monotonic_time ();
    idle_clients_send_all (ic, "{\"type\":\"join\",\"id\":1,\"treeId\":\"bench\"}");
    run_until (joins_done, 60);
    guint m = idle_clients_joined (ic);
    const gint64 *t = idle_clients_join_times (ic);
    gint64 j1 = m ? t[m - 1] : g_get_monotonic_time ();
    double c1 = proc_cpu_seconds (B.pid);
    double first_rate = 0, last_rate = 0;
    guint tenth = m / 10;
    if (tenth > 1) {
      first_rate = (tenth - 1) / ((t[tenth - 1] - t[0]) / 1e6);
      last_rate = (tenth - 1) / ((t[m - 1] - t[m - tenth]) / 1e6);
    }
    long rss2 = proc_rss_kb (B.pid);
    printf (" joins=%u join_secs=%.3f joins_per_s=%.0f join_cpu_us=%.2f first10_per_s=%.0f"
        " last10_per_s=%.0f rss2_kb=%ld join_errors=%u", m, (j1 - j0) / 1e6,
        m / ((j1 - j0) / 1e6), m ? (c1 - c0) * 1e6 / m : 0, first_rate, last_rate, rss2,
        idle_clients_errors (ic));
  }
  printf (" closed=%u errors=%" G_GUINT64_FORMAT "\n", idle_clients_closed (ic), B.errors);
  if (B.errors)
    fprintf (stderr, "sigbench: %" G_GUINT64_FORMAT " errors, first: %s\n", B.errors, B.first_error);
  idle_clients_stop (ic);
  return 0;
}

/* ------------------------------------------------------------------------ */

int
main (int argc, char **argv)
{
  g_autofree char *proto = NULL, *url = NULL;
  gint pid = 0, pairs = 50, count = 2000, window = 8, idle = 0, clients = 10000;
  double limit = 20, rate = 1000, rate_time = 3;
  gboolean join = FALSE;
  GOptionEntry entries[] = {
    { "proto", 0, 0, G_OPTION_ARG_STRING, &proto, "pt or sio", "P" },
    { "url", 0, 0, G_OPTION_ARG_STRING, &url, "ws://127.0.0.1:PORT (pt), http://127.0.0.1:PORT (sio)", "U" },
    { "pid", 0, 0, G_OPTION_ARG_INT, &pid, "server process id", "PID" },
    { "pairs", 0, 0, G_OPTION_ARG_INT, &pairs, "sender/receiver pairs (emit)", "N" },
    { "count", 0, 0, G_OPTION_ARG_INT, &count, "messages per pair (emit)", "N" },
    { "window", 0, 0, G_OPTION_ARG_INT, &window, "messages in flight per pair (emit)", "N" },
    { "idle", 0, 0, G_OPTION_ARG_INT, &idle, "idle clients connected as well (emit)", "N" },
    { "time-limit", 0, 0, G_OPTION_ARG_DOUBLE, &limit, "seconds (emit throughput phase)", "S" },
    { "rate", 0, 0, G_OPTION_ARG_DOUBLE, &rate, "messages/s in total (emit latency phase)", "R" },
    { "rate-time", 0, 0, G_OPTION_ARG_DOUBLE, &rate_time, "seconds (emit latency phase)", "S" },
    { "clients", 0, 0, G_OPTION_ARG_INT, &clients, "idle clients (scale)", "N" },
    { "join", 0, 0, G_OPTION_ARG_NONE, &join, "all clients join one tree (scale, pt)", NULL },
    { "connect-time", 0, 0, G_OPTION_ARG_DOUBLE, &connect_time, "seconds to connect idle clients (default 180)", "S" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("emit|scale — signalling load generator");
  g_autoptr (GError) error = NULL;
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || argc != 2 || !proto || !url || pid <= 0) {
    fprintf (stderr, "%s\n", error ? error->message : "usage: sigbench emit|scale --proto P --url U --pid PID ...");
    return 2;
  }
  if (!strstr (url, "://127.0.0.1:") && !strstr (url, "://localhost:")) {
    fprintf (stderr, "sigbench: loopback URLs only\n");
    return 2;
  }
  B.proto = strcmp (proto, "sio") == 0 ? PROTO_SIO : PROTO_PT;
  B.url = g_strdup (url);
  B.pid = pid;
  B.conns = g_ptr_array_new ();
  B.session = soup_session_new_with_options ("max-conns", 100000, "max-conns-per-host", 100000,
      "timeout", 30, NULL);
  g_timeout_add (100, tick, NULL);
  if (B.proto == PROTO_SIO)
    g_timeout_add_seconds (20, sio_ping, NULL);

  if (strcmp (argv[1], "emit") == 0)
    return mode_emit (pairs, count, window, idle, limit, rate, rate_time);
  if (strcmp (argv[1], "scale") == 0)
    return mode_scale (clients, join);
  fprintf (stderr, "sigbench: unknown mode %s\n", argv[1]);
  return 2;
}
