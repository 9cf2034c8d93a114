/* rooms — three clients in a room; one speaks, the others hear it.
 *   rooms ws://127.0.0.1:PORT
 */
#include "example-util.h"

static void
on_say (PeerTreeClient *client, PeerTreeMessage *msg, guint *heard)
{
  printf ("%s heard \"%s\" from %s in room %s\n", peer_tree_client_get_client_id (client),
      json_array_get_string_element (peer_tree_message_get_args (msg), 0),
      peer_tree_message_get_sender (msg), peer_tree_message_get_room (msg));
  (*heard)++;
}

int
main (int argc, char **argv)
{
  if (argc != 2) {
    fprintf (stderr, "usage: %s ws://HOST:PORT\n", argv[0]);
    return 2;
  }
  const char *names[] = { "ann", "ben", "cat" };
  PeerTreeClient *c[3];
  guint heard = 0;
  g_autoptr (GError) error = NULL;
  for (int i = 0; i < 3; i++) {
    g_autoptr (GAsyncResult) res = NULL;
    c[i] = ex_client (argv[1], names[i]);
    g_signal_connect (c[i], "message::say", G_CALLBACK (on_say), &heard);
    peer_tree_client_room_join_async (c[i], "lobby", NULL, ex_store, &res);
    ex_check (peer_tree_client_finish (c[i], ex_wait (&res), NULL, &error), error, "room-join");
  }
  g_autoptr (GAsyncResult) res = NULL;
  g_autoptr (JsonArray) args = json_array_new ();
  json_array_add_string_element (args, "hello, room");
  guint delivered = 0;
  peer_tree_client_room_emit_async (c[0], "lobby", "say", args, NULL, ex_store, &res);
  ex_check (peer_tree_client_finish (c[0], ex_wait (&res), &delivered, &error), error, "room-emit");
  printf ("ann's message reached %u members (she is not one of them)\n", delivered);
  while (heard < delivered)
    g_main_context_iteration (NULL, TRUE);

  g_clear_object (&res);
  peer_tree_client_list_rooms_async (c[1], "ann", NULL, ex_store, &res);
  g_auto (GStrv) rooms = peer_tree_client_list_rooms_finish (c[1], ex_wait (&res), &error);
  ex_check (rooms != NULL, error, "list-rooms");
  printf ("ann is in %u room(s): %s\n", g_strv_length (rooms), rooms[0]);
  for (int i = 0; i < 3; i++)
    g_object_unref (c[i]);
  return 0;
}
