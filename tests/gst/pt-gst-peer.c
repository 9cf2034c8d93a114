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
 */
#include <stdio.h>
#include <gst/gst.h>

#include "pt-gst-process.h"

typedef struct {
  GMainLoop *loop;
  int status;
} PtPeer;

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
  PtPeer peer = { NULL, 0 };
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
  peer.loop = g_main_loop_new (NULL, FALSE);
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
