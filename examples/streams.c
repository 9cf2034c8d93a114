/* streams — alice sends 8 MB to bob through a GIOStream; bob checks it.
 *   streams ws://127.0.0.1:PORT
 */
#include "example-util.h"

#define SIZE (8 * 1024 * 1024)

static void
on_request (PeerTreeClient *client, PeerTreeMessage *msg, GIOStream **out)
{
  printf ("bob accepts a stream on channel \"%s\" from %s\n", peer_tree_message_get_name (msg),
      peer_tree_message_get_sender (msg));
  *out = peer_tree_message_accept_stream (msg);
}

static void
on_spliced (GObject *src, GAsyncResult *res, gpointer user_data)
{
  g_autoptr (GError) error = NULL;
  gssize n = g_output_stream_splice_finish (G_OUTPUT_STREAM (src), res, &error);
  ex_check (n == SIZE, error, "send");
  *(gboolean *) user_data = TRUE;
}

int
main (int argc, char **argv)
{
  if (argc != 2) {
    fprintf (stderr, "usage: %s ws://HOST:PORT\n", argv[0]);
    return 2;
  }
  g_autoptr (PeerTreeClient) alice = ex_client (argv[1], "alice");
  g_autoptr (PeerTreeClient) bob = ex_client (argv[1], "bob");
  g_autoptr (GIOStream) incoming = NULL;
  g_signal_connect (bob, "stream-request::files", G_CALLBACK (on_request), &incoming);

  g_autoptr (GAsyncResult) res = NULL;
  g_autoptr (GError) error = NULL;
  peer_tree_client_open_stream_async (alice, "bob", "files", NULL, 0, NULL, ex_store, &res);
  g_autoptr (GIOStream) out = peer_tree_client_open_stream_finish (alice, ex_wait (&res), &error);
  ex_check (out != NULL, error, "open-stream");

  /* Alice splices a memory stream into hers and closes it (end-of-file for bob). */
  guint8 *data = g_malloc (SIZE);
  for (gsize i = 0; i < SIZE; i++)
    data[i] = (guint8) (i * 31);
  g_autoptr (GInputStream) source = g_memory_input_stream_new_from_data (data, SIZE, g_free);
  gboolean sent = FALSE;
  g_output_stream_splice_async (g_io_stream_get_output_stream (out), source,
      G_OUTPUT_STREAM_SPLICE_CLOSE_SOURCE | G_OUTPUT_STREAM_SPLICE_CLOSE_TARGET,
      G_PRIORITY_DEFAULT, NULL, on_spliced, &sent);

  /* Bob reads synchronously (this iterates the main context while waiting). */
  while (!incoming)
    g_main_context_iteration (NULL, TRUE);
  guint8 buf[65536];
  gsize total = 0;
  gboolean intact = TRUE;
  gint64 start = g_get_monotonic_time ();
  for (;;) {
    gssize n = g_input_stream_read (g_io_stream_get_input_stream (incoming), buf, sizeof buf,
        NULL, &error);
    ex_check (n >= 0, error, "read");
    if (n == 0)
      break;
    for (gssize i = 0; i < n; i++)
      intact &= buf[i] == (guint8) ((total + i) * 31);
    total += n;
  }
  double s = (g_get_monotonic_time () - start) / 1e6;
  printf ("bob read %zu bytes (%s) to end-of-file in %.2f s\n", total, intact ? "intact" : "CORRUPT", s);
  while (!sent)
    g_main_context_iteration (NULL, TRUE);
  return intact && total == SIZE ? 0 : 1;
}
