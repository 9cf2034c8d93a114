/* tree-demo — a source and N viewers form a tree through peertree-server,
 * using libpeertree only (no media). Prints the tree each client was told
 * about, then has one relay leave and prints the repaired tree.
 *
 *   tree-demo ws://127.0.0.1:8645 [N_VIEWERS] [K] [K1]
 */
#include <peertree.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
  PeerTreeClient *client;
  char *parent;
} Node;

static GAsyncResult *
await (GAsyncResult **res)
{
  while (!*res)
    g_main_context_iteration (NULL, TRUE);
  return *res;
}

static void
store (GObject *source, GAsyncResult *res, gpointer user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (res);
}

static void
on_upstream (PeerTreeClient *c, const char *tree, const char *parent, guint depth, Node *n)
{
  g_free (n->parent);
  n->parent = g_strdup (parent);
}

static void
print_subtree (Node *nodes, guint n, const char *id, guint indent)
{
  for (guint i = 0; i < n; i++) {
    if (!nodes[i].client || g_strcmp0 (nodes[i].parent, id) != 0)
      continue;
    const char *child = peer_tree_client_get_client_id (nodes[i].client);
    printf ("%*s└─ %s (depth %u)\n", indent * 3, "", child, indent + 1);
    print_subtree (nodes, n, child, indent + 1);
  }
}

int
main (int argc, char **argv)
{
  if (argc < 2) {
    fprintf (stderr, "usage: %s ws://HOST:PORT [N_VIEWERS] [K] [K1]\n", argv[0]);
    return 2;
  }
  const char *url = argv[1];
  guint n = argc > 2 ? (guint) atoi (argv[2]) : 12;
  guint k = argc > 3 ? (guint) atoi (argv[3]) : 2;
  guint k1 = argc > 4 ? (guint) atoi (argv[4]) : 3;
  g_autoptr (GError) error = NULL;
  g_autoptr (GAsyncResult) res = NULL;

  g_autoptr (PeerTreeClient) source = peer_tree_client_new (url, "source");
  peer_tree_client_connect_async (source, NULL, store, &res);
  if (!peer_tree_client_connect_finish (source, await (&res), &error)) {
    fprintf (stderr, "tree-demo: %s\n", error->message);
    return 1;
  }
  g_clear_object (&res);
  peer_tree_client_create_async (source, "demo", k, k1, NULL, store, &res);
  g_autofree char *tree = peer_tree_client_create_finish (source, await (&res), &error);
  if (!tree) {
    fprintf (stderr, "tree-demo: %s\n", error->message);
    return 1;
  }
  printf ("tree %s created (k=%u, k1=%u); %u viewers join:\n", tree, k, k1, n);

  Node *nodes = g_new0 (Node, n);
  for (guint i = 0; i < n; i++) {
    g_autofree char *id = g_strdup_printf ("viewer-%02u", i + 1);
    nodes[i].client = peer_tree_client_new (url, id);
    g_signal_connect (nodes[i].client, "upstream-changed", G_CALLBACK (on_upstream), &nodes[i]);
    g_clear_object (&res);
    peer_tree_client_connect_async (nodes[i].client, NULL, store, &res);
    if (!peer_tree_client_connect_finish (nodes[i].client, await (&res), &error))
      break;
    g_clear_object (&res);
    peer_tree_client_join_async (nodes[i].client, tree, NULL, store, &res);
    if (!peer_tree_client_join_finish (nodes[i].client, await (&res), NULL, NULL, &error))
      break;
  }
  if (error) {
    fprintf (stderr, "tree-demo: %s\n", error->message);
    return 1;
  }
  printf ("source\n");
  print_subtree (nodes, n, "source", 0);

  /* The first viewer (a relay) drops out; its children are re-parented. */
  printf ("\nviewer-01 disconnects; the server re-parents its children:\n");
  peer_tree_client_close (nodes[0].client);
  g_clear_object (&nodes[0].client);
  gint64 deadline = g_get_monotonic_time () + G_USEC_PER_SEC / 2;
  while (g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, FALSE) || (g_usleep (1000), 0);
  printf ("source\n");
  print_subtree (nodes, n, "source", 0);

  for (guint i = 0; i < n; i++) {
    if (nodes[i].client)
      peer_tree_client_close (nodes[i].client);
    g_clear_object (&nodes[i].client);
    g_free (nodes[i].parent);
  }
  g_free (nodes);
  return 0;
}
