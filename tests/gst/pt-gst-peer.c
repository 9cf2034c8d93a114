/* A peertree node in a process of its own, for tests that kill peers
 * (SIGKILL: no leave, no goodbye, sockets closed by the kernel; SIGSTOP: a
 * peer that vanishes without closing anything).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 *   pt-gst-peer 'LAUNCH DESCRIPTION'
 *
 * Runs the pipeline and prints each peertree-* element message, warning and
 * error on stdout, one line each ("message: …", "warning: …", "error: …").
 * Exits 0 on EOS, 1 on an error. The test harness builds it next to the
 * tests (with AddressSanitizer in the ASan build, like the plugin it loads).
 *
 * Data (tests/browser's data cases):
 *   stdin "send N"   the element named "s" (a peertreesink data=true) sends N
 *                    messages with send-data (sizes from 1 byte to 64 KiB,
 *                    some in fragments), then prints "sent N sha256=HEX" (the
 *                    hash of every payload, in order)
 *   PT_GST_PEER_TAMPER=flip|replay|drop|inject   what every peertree element
 *                    of the pipeline does to the data it forwards (pt-data.h)
 */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <gst/gst.h>

#include "pt-gst-process.h"

typedef struct {
  GMainLoop *loop;
  int status;
  GstElement *pipeline;
  guint64 sent;                 /* messages sent so far (numbers their contents) */
} PtPeer;

/* Message @i's payload: its size varies from 1 byte to 64 KiB (every 50th:
 * 64 KiB, which goes in fragments), its bytes depend on @i. */
static GBytes *
data_message (guint64 i)
{
  gsize size = i % 50 == 0 ? 65536 : (i * 131) % 3000 + 1;
  guint8 *d = g_malloc (size);

  for (gsize j = 0; j < size; j++)
    d[j] = (guint8) (i * 7 + j * 13 + (j >> 8));
  return g_bytes_new_take (d, size);
}

typedef struct {
  PtPeer *peer;
  guint count;
} PtSend;

/* A thread of its own: send-data may wait for a slow child. */
static gpointer
send_thread (gpointer data)
{
  PtSend *job = data;
  GstElement *sink = gst_bin_get_by_name (GST_BIN (job->peer->pipeline), "s");
  g_autoptr (GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  guint ok_count = 0;

  for (guint n = 0; sink && n < job->count; n++) {
    g_autoptr (GBytes) b = data_message (++job->peer->sent);
    gboolean ok = FALSE;
    gsize len;
    const guint8 *d = g_bytes_get_data (b, &len);

    g_signal_emit_by_name (sink, "send-data", b, &ok);
    if (!ok)
      break;
    g_checksum_update (sum, d, len);
    ok_count++;
  }
  printf ("sent %u sha256=%s\n", ok_count, g_checksum_get_string (sum));
  fflush (stdout);
  if (sink)
    gst_object_unref (sink);
  g_free (job);
  return NULL;
}

static gboolean
on_stdin (GIOChannel *ch, GIOCondition cond, gpointer data)
{
  PtPeer *peer = data;
  g_autofree gchar *line = NULL;
  guint n;

  (void) cond;
  if (g_io_channel_read_line (ch, &line, NULL, NULL, NULL) != G_IO_STATUS_NORMAL)
    return G_SOURCE_REMOVE;
  if (sscanf (line, "send %u", &n) == 1) {
    PtSend *job = g_new0 (PtSend, 1);

    job->peer = peer;
    job->count = n;
    g_thread_unref (g_thread_new ("pt-send", send_thread, job));
  }
  return G_SOURCE_CONTINUE;
}

/* PT_GST_PEER_TAMPER: the test hook of pt-data.h on every peertree element */
static void
set_tamper (GstElement *pipeline)
{
  static const gchar *names[] = { "none", "flip", "replay", "drop", "inject" };
  const gchar *want = g_getenv ("PT_GST_PEER_TAMPER");
  GstIterator *it;
  GValue v = G_VALUE_INIT;

  if (want == NULL || !GST_IS_BIN (pipeline))
    return;
  for (guint t = 1; t < G_N_ELEMENTS (names); t++) {
    if (strcmp (want, names[t]) != 0)
      continue;
    it = gst_bin_iterate_recurse (GST_BIN (pipeline));
    while (gst_iterator_next (it, &v) == GST_ITERATOR_OK) {
      GstElement *e = g_value_get_object (&v);

      if (g_str_has_prefix (G_OBJECT_TYPE_NAME (e), "GstPeerTree"))
        g_object_set_data (G_OBJECT (e), "peertree-test-tamper-data", GINT_TO_POINTER (t));
      g_value_reset (&v);
    }
    g_value_unset (&v);
    gst_iterator_free (it);
  }
}

static gboolean
on_message (GstBus *bus, GstMessage *msg, gpointer data)
{
  PtPeer *peer = data;

  (void) bus;
  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_ELEMENT: {
      const GstStructure *s = gst_message_get_structure (msg);

      if (s && g_str_has_prefix (gst_structure_get_name (s), "peertree-")) {
        g_autofree gchar *str = gst_structure_to_string (s);

        printf ("message: %s\n", str);
      }
      break;
    }
    case GST_MESSAGE_WARNING:
    case GST_MESSAGE_ERROR: {
      g_autoptr (GError) err = NULL;
      g_autofree gchar *dbg = NULL;
      gboolean error = GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR;

      if (error)
        gst_message_parse_error (msg, &err, &dbg);
      else
        gst_message_parse_warning (msg, &err, &dbg);
      printf ("%s: %s (%s)\n", error ? "error" : "warning", err->message, dbg ? dbg : "");
      if (error) {
        /* stop the pipeline before exiting: never exit() with streaming
         * threads running */
        peer->status = 1;
        g_main_loop_quit (peer->loop);
      }
      break;
    }
    case GST_MESSAGE_EOS:
      g_main_loop_quit (peer->loop);
      break;
    default:
      break;
  }
  fflush (stdout);
  return G_SOURCE_CONTINUE;
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  GstElement *pipeline;
  PtPeer peer = { NULL, 0, NULL, 0 };
  GIOChannel *in;
  GstBus *bus;

  gst_init (&argc, &argv);
  if (argc != 2) {
    fprintf (stderr, "usage: %s 'LAUNCH DESCRIPTION'\n", argv[0]);
    return 2;
  }
  pipeline = gst_parse_launch (argv[1], &error);
  if (pipeline == NULL) {
    printf ("error: %s\n", error->message);
    return 1;
  }
  peer.pipeline = pipeline;
  set_tamper (pipeline);
  peer.loop = g_main_loop_new (NULL, FALSE);
  in = g_io_channel_unix_new (0);
  g_io_add_watch (in, G_IO_IN | G_IO_HUP, on_stdin, &peer);
  g_io_channel_unref (in);
  bus = gst_element_get_bus (pipeline);
  gst_bus_add_watch (bus, on_message, &peer);
  gst_object_unref (bus);
  if (gst_element_set_state (pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    printf ("error: cannot start the pipeline\n");
    return 1;
  }
  printf ("playing\n");
  fflush (stdout);
  g_main_loop_run (peer.loop);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
  g_main_loop_unref (peer.loop);
  return peer.status;
}
