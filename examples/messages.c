/* messages — emit an event to another client and get its reply; listen to
 * one sender only; pair with add-target and learn when the peer leaves.
 *   messages ws://127.0.0.1:PORT
 */
#include "example-util.h"

static void
on_ping (PeerTreeClient *client, PeerTreeMessage *msg, gpointer user_data)
{
  const char *text = json_array_get_string_element (peer_tree_message_get_args (msg), 0);
  printf ("bob got \"%s\" from %s\n", text, peer_tree_message_get_sender (msg));
  g_autofree char *answer = g_strdup_printf ("pong to %s", text);
  g_autoptr (JsonNode) value = json_node_init_string (json_node_alloc (), answer);
  peer_tree_message_reply (msg, value);
}

static void
on_lost (PeerTreeClient *client, const char *who, gboolean *flag)
{
  printf ("alice: target %s disconnected\n", who);
  *flag = TRUE;
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
  g_autoptr (GAsyncResult) res = NULL;
  g_autoptr (GError) error = NULL;

  /* Bob answers "ping" events, but only those from alice. */
  peer_tree_client_connect_message_from (bob, "alice", "ping", on_ping, NULL, NULL);

  g_autoptr (JsonArray) args = json_array_new ();
  json_array_add_string_element (args, "hello");
  peer_tree_client_emit_async (alice, "bob", "ping", args, TRUE, 2000, NULL, ex_store, &res);
  g_autoptr (JsonNode) reply = peer_tree_client_emit_finish (alice, ex_wait (&res), &error);
  ex_check (reply != NULL, error, "emit");
  printf ("alice got the reply \"%s\"\n", json_node_get_string (reply));

  /* An unknown target is an error, not a silent drop. */
  g_clear_object (&res);
  peer_tree_client_emit_async (alice, "nobody", "ping", NULL, FALSE, 0, NULL, ex_store, &res);
  g_autoptr (JsonNode) none = peer_tree_client_emit_finish (alice, ex_wait (&res), &error);
  printf ("emit to nobody: %s\n", none ? "delivered?!" : error->message);
  g_clear_error (&error);

  /* Pairing: alice learns when bob goes. */
  gboolean lost = FALSE;
  g_signal_connect (alice, "target-disconnected", G_CALLBACK (on_lost), &lost);
  g_clear_object (&res);
  peer_tree_client_add_target_async (alice, "bob", 0, NULL, ex_store, &res);
  ex_check (peer_tree_client_add_target_finish (alice, ex_wait (&res), &error), error, "add-target");
  peer_tree_client_close (bob);
  while (!lost)
    g_main_context_iteration (NULL, TRUE);
  return 0;
}
