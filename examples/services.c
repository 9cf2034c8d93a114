/* services — a client provides a service with a topic; another calls it the
 * same way it calls the server's built-in "peertree" service, and subscribes.
 *   services ws://127.0.0.1:PORT
 */
#include "example-util.h"

static void
on_call (PeerTreeClient *client, PeerTreeMessage *msg, gpointer user_data)
{
  JsonArray *args = peer_tree_message_get_args (msg);
  if (g_str_equal (peer_tree_message_get_name (msg), "add") && json_array_get_length (args) == 2) {
    g_autoptr (JsonNode) v = json_node_init_int (json_node_alloc (),
        json_array_get_int_element (args, 0) + json_array_get_int_element (args, 1));
    peer_tree_message_reply (msg, v);
  } else {
    peer_tree_message_reply_error (msg, "add takes two numbers");
  }
}

static void
on_topic (PeerTreeClient *client, const char *service, const char *topic, JsonArray *args,
    gboolean *got)
{
  printf ("user got %s/%s: %s\n", service, topic, json_array_get_string_element (args, 0));
  *got = TRUE;
}


int
main (int argc, char **argv)
{
  if (argc != 2) {
    fprintf (stderr, "usage: %s ws://HOST:PORT\n", argv[0]);
    return 2;
  }
  g_autoptr (PeerTreeClient) calc = ex_client (argv[1], "calc");
  g_autoptr (PeerTreeClient) user = ex_client (argv[1], "user");
  g_autoptr (GAsyncResult) res = NULL;
  g_autoptr (GError) error = NULL;
  static const char *const methods[] = { "add", NULL };

  g_signal_connect (calc, "service-call::math", G_CALLBACK (on_call), NULL);
  peer_tree_client_provide_service_async (calc, "math", methods, NULL, ex_store, &res);
  ex_check (peer_tree_client_finish (calc, ex_wait (&res), NULL, &error), error, "provide");

  g_autoptr (JsonArray) nums = json_array_new ();
  json_array_add_int_element (nums, 2);
  json_array_add_int_element (nums, 40);
  g_clear_object (&res);
  peer_tree_client_call_service_async (user, "math", "add", nums, 0, NULL, ex_store, &res);
  g_autoptr (JsonNode) sum = peer_tree_client_call_service_finish (user, ex_wait (&res), &error);
  ex_check (sum != NULL, error, "math.add");
  printf ("math.add(2, 40) = %" G_GINT64_FORMAT " (provided by a client)\n", json_node_get_int (sum));

  g_clear_object (&res);
  peer_tree_client_call_service_async (user, "peertree", "list-trees", NULL, 0, NULL, ex_store, &res);
  g_autoptr (JsonNode) trees = peer_tree_client_call_service_finish (user, ex_wait (&res), &error);
  ex_check (trees != NULL, error, "peertree.list-trees");
  printf ("peertree.list-trees() = %u tree(s) (provided by the server)\n",
      json_array_get_length (json_node_get_array (trees)));

  /* A topic: calc creates and publishes, user subscribes. */
  gboolean got = FALSE;
  g_signal_connect (user, "topic", G_CALLBACK (on_topic), &got);
  g_clear_object (&res);
  peer_tree_client_topic_create_async (calc, "math", "results", NULL, ex_store, &res);
  ex_check (peer_tree_client_finish (calc, ex_wait (&res), NULL, &error), error, "topic-create");
  g_clear_object (&res);
  peer_tree_client_subscribe_async (user, "math", "results", NULL, ex_store, &res);
  ex_check (peer_tree_client_finish (user, ex_wait (&res), NULL, &error), error, "subscribe");
  g_autoptr (JsonArray) news = json_array_new ();
  json_array_add_string_element (news, "42 is the answer");
  g_clear_object (&res);
  peer_tree_client_publish_async (calc, "math", "results", news, NULL, ex_store, &res);
  ex_check (peer_tree_client_finish (calc, ex_wait (&res), NULL, &error), error, "publish");
  while (!got)
    g_main_context_iteration (NULL, TRUE);
  return 0;
}
