/* Unit tests of the pure tree placement algorithm (server/pt-tree.c). */
#include <gst/check/gstcheck.h>
#include "pt-tree.h"

static void
assert_valid (PtTree *tree)
{
  g_autoptr (GError) error = NULL;
  gboolean ok = pt_tree_check (tree, &error);
  fail_unless (ok, "tree invariant broken: %s", error ? error->message : "?");
}

GST_START_TEST (test_breadth_first_placement)
{
  g_autoptr (PtTree) tree = pt_tree_new ("src", 2, 4);
  /* Root takes k1=4, then each of those takes k=2 in insertion order. */
  const char *expected[] = { "src", "src", "src", "src", "p0", "p0", "p1", "p1", "p2", "p2",
      "p3", "p3", "p4", "p4", "p5" };
  for (guint i = 0; i < G_N_ELEMENTS (expected); i++) {
    g_autofree char *id = g_strdup_printf ("p%u", i);
    const char *parent = pt_tree_join (tree, id);
    fail_unless_equals_string (parent, expected[i]);
    assert_valid (tree);
  }
  fail_unless_equals_int (pt_tree_get_depth (tree, "p0"), 1);
  fail_unless_equals_int (pt_tree_get_depth (tree, "p4"), 2);
  fail_unless_equals_int (pt_tree_get_depth (tree, "p14"), 3);
  fail_unless (pt_tree_join (tree, "src") == NULL);
  fail_unless_equals_int (pt_tree_size (tree), 16);
}
GST_END_TEST;

GST_START_TEST (test_rejoin_excludes_own_subtree)
{
  g_autoptr (PtTree) tree = pt_tree_new ("src", 1, 1);
  /* A chain src - a - b - c. Re-joining a must not put it under b or c. */
  fail_unless_equals_string (pt_tree_join (tree, "a"), "src");
  fail_unless_equals_string (pt_tree_join (tree, "b"), "a");
  fail_unless_equals_string (pt_tree_join (tree, "c"), "b");
  fail_unless_equals_string (pt_tree_join (tree, "a"), "src");
  assert_valid (tree);
  fail_unless_equals_string (pt_tree_get_parent (tree, "b"), "a");
  fail_unless_equals_int (pt_tree_get_n_children (tree, "src"), 1);
  /* Re-joining b: src is full (k1=1), a has a free slot once b is detached. */
  fail_unless_equals_string (pt_tree_join (tree, "b"), "a");
  assert_valid (tree);
  /* No ghost entries: counts unchanged. */
  fail_unless_equals_int (pt_tree_size (tree), 4);
  fail_unless_equals_int (pt_tree_get_n_children (tree, "a"), 1);
}
GST_END_TEST;

GST_START_TEST (test_reconnect_avoids_old_parent)
{
  g_autoptr (PtTree) tree = pt_tree_new ("src", 2, 2);
  pt_tree_join (tree, "a");
  pt_tree_join (tree, "b");
  pt_tree_join (tree, "c"); /* under a */
  fail_unless_equals_string (pt_tree_get_parent (tree, "c"), "a");
  fail_unless_equals_string (pt_tree_reconnect (tree, "c"), "b");
  assert_valid (tree);
  /* Only slot is the old parent: taken again rather than failing. */
  g_autoptr (PtTree) small = pt_tree_new ("src", 1, 1);
  pt_tree_join (small, "a");
  fail_unless_equals_string (pt_tree_reconnect (small, "a"), "src");
  fail_unless (pt_tree_reconnect (small, "src") == NULL);
  fail_unless (pt_tree_reconnect (small, "nobody") == NULL);
}
GST_END_TEST;

GST_START_TEST (test_remove_reparents_orphans_with_subtrees)
{
  g_autoptr (PtTree) tree = pt_tree_new ("src", 2, 1);
  pt_tree_join (tree, "a");        /* src */
  pt_tree_join (tree, "b");        /* a */
  pt_tree_join (tree, "c");        /* a */
  pt_tree_join (tree, "d");        /* b */
  pt_tree_join (tree, "e");        /* b */
  pt_tree_join (tree, "f");        /* c */
  g_autoptr (GArray) moves = g_array_new (FALSE, FALSE, sizeof (PtMove));
  fail_unless (pt_tree_remove (tree, "a", moves));
  assert_valid (tree);
  fail_unless_equals_int (moves->len, 2);
  /* b takes the root's free slot; c (detached, so not a candidate itself)
   * goes to the first node in BFS order with room: src and b are full, d is not. */
  PtMove *m0 = &g_array_index (moves, PtMove, 0);
  PtMove *m1 = &g_array_index (moves, PtMove, 1);
  fail_unless_equals_string (m0->peer, "b");
  fail_unless_equals_string (m0->parent, "src");
  fail_unless_equals_string (m1->peer, "c");
  fail_unless_equals_string (m1->parent, "d");
  /* Subtrees kept. */
  fail_unless_equals_string (pt_tree_get_parent (tree, "f"), "c");
  fail_unless_equals_string (pt_tree_get_parent (tree, "d"), "b");
  fail_unless (!pt_tree_contains (tree, "a"));
  fail_unless (!pt_tree_remove (tree, "src", NULL));
  fail_unless (!pt_tree_remove (tree, "a", NULL));
}
GST_END_TEST;

GST_START_TEST (test_attach_and_rename_root)
{
  g_autoptr (PtTree) tree = pt_tree_new ("src", 1, 2);
  fail_unless (pt_tree_attach (tree, "a", "src"));
  fail_unless (pt_tree_attach (tree, "b", "a"));
  fail_if (pt_tree_attach (tree, "c", "a"));       /* a is full (k=1) */
  fail_if (pt_tree_attach (tree, "c", "ghost"));   /* unknown parent */
  fail_if (pt_tree_attach (tree, "b", "src"));     /* already a member */
  assert_valid (tree);
  fail_unless (pt_tree_rename_root (tree, "src2"));
  fail_unless_equals_string (pt_tree_get_root (tree), "src2");
  fail_unless_equals_string (pt_tree_get_parent (tree, "a"), "src2");
  fail_if (pt_tree_contains (tree, "src"));
  fail_if (pt_tree_rename_root (tree, "b"));
  assert_valid (tree);
}
GST_END_TEST;

/* A leaf takes no children: placement skips it, attach refuses it, a full
 * tree refuses a new peer, and an orphan with no slot leaves with its subtree. */
GST_START_TEST (test_leaves)
{
  g_autoptr (PtTree) tree = pt_tree_new ("src", 2, 1);
  fail_unless_equals_string (pt_tree_join (tree, "a"), "src");
  fail_unless_equals_string (pt_tree_join (tree, "b"), "a");
  fail_unless (pt_tree_set_leaf (tree, "b", TRUE));
  fail_unless (pt_tree_is_leaf (tree, "b"));
  fail_if (pt_tree_set_leaf (tree, "src", TRUE));  /* not the root */
  fail_if (pt_tree_set_leaf (tree, "a", TRUE));    /* a has children */
  fail_unless_equals_string (pt_tree_join (tree, "c"), "a");
  fail_unless_equals_string (pt_tree_join (tree, "d"), "c");  /* not under b */
  fail_if (pt_tree_attach (tree, "x", "b"));
  assert_valid (tree);
  /* c and d leaves too: full */
  fail_unless (pt_tree_set_leaf (tree, "d", TRUE));
  fail_unless_equals_string (pt_tree_join (tree, "e"), "c");
  fail_unless (pt_tree_set_leaf (tree, "e", TRUE));
  fail_unless (pt_tree_join (tree, "f") == NULL);
  fail_if (pt_tree_contains (tree, "f"));
  /* a member's own re-join and reconnect always find its own slot */
  fail_unless_equals_string (pt_tree_join (tree, "b"), "a");
  fail_unless_equals_string (pt_tree_reconnect (tree, "b"), "a");
  assert_valid (tree);
  /* a goes: b or c takes its slot under src; c (not a leaf) keeps d and e */
  g_autoptr (GArray) moves = g_array_new (FALSE, FALSE, sizeof (PtMove));
  g_autoptr (GPtrArray) dropped = g_ptr_array_new_with_free_func (g_free);
  fail_unless (pt_tree_remove_full (tree, "a", moves, dropped));
  fail_unless_equals_int (moves->len, 1);
  fail_unless_equals_string (g_array_index (moves, PtMove, 0).parent, "src");
  fail_unless_equals_int (dropped->len + pt_tree_size (tree), 5);
  assert_valid (tree);
}
GST_END_TEST;

/* At least 10 000 random join / leave / reconnect / disconnect operations,
 * checking every invariant after each step. */
GST_START_TEST (test_randomized_operations)
{
  GRand *rand = g_rand_new_with_seed (0x9e3779b9);
  for (guint round = 0; round < 4; round++) {
    guint k = g_rand_int_range (rand, 1, 5), k1 = g_rand_int_range (rand, 1, 11);
    g_autoptr (PtTree) tree = pt_tree_new ("root", k, k1);
    g_autoptr (GPtrArray) live = g_ptr_array_new_with_free_func (g_free);
    guint next = 0;
    for (guint step = 0; step < 3000; step++) {
      guint op = g_rand_int_range (rand, 0, 10);
      if (op < 4 || live->len == 0) {
        char *id = g_strdup_printf ("p%u", next++);
        const char *parent = pt_tree_join (tree, id);
        fail_unless (parent != NULL);
        fail_if (g_strcmp0 (parent, id) == 0);
        g_ptr_array_add (live, id);
      } else {
        guint i = g_rand_int_range (rand, 0, live->len);
        const char *id = live->pdata[i];
        if (op < 6) { /* leave or disconnect: same tree effect */
          g_autoptr (GArray) moves = g_array_new (FALSE, FALSE, sizeof (PtMove));
          guint orphans = pt_tree_get_n_children (tree, id);
          fail_unless (pt_tree_remove (tree, id, moves));
          fail_unless_equals_int (moves->len, orphans);
          g_ptr_array_remove_index_fast (live, i);
        } else if (op < 8) {
          fail_unless (pt_tree_reconnect (tree, id) != NULL);
        } else {
          fail_unless (pt_tree_join (tree, id) != NULL); /* re-join */
        }
      }
      assert_valid (tree);
      fail_unless_equals_int (pt_tree_size (tree), live->len + 1);
    }
  }
  g_rand_free (rand);
}
GST_END_TEST;


/* max-children 0 is a leaf: never a parent, whatever joins, reconnects or
 * orphans come after it. */
GST_START_TEST (test_max_children_zero_is_leaf)
{
  g_autoptr (PtTree) tree = pt_tree_new ("src", 2, 1);
  fail_unless_equals_string (pt_tree_join (tree, "a"), "src");
  fail_unless (pt_tree_set_capacity (tree, "a", 0, 0));
  fail_unless (pt_tree_is_leaf (tree, "a"));
  fail_unless_equals_int (pt_tree_get_capacity (tree, "a"), 0);
  /* src is full (k1 = 1), a takes none: the tree is full */
  fail_unless (pt_tree_join (tree, "b") == NULL);
  fail_if (pt_tree_attach (tree, "b", "a"));
  fail_if (pt_tree_contains (tree, "b"));
  fail_unless_equals_int (pt_tree_get_n_children (tree, "a"), 0);
  /* declared again with room: takes children */
  fail_unless (pt_tree_set_capacity (tree, "a", -1, 0));
  fail_if (pt_tree_is_leaf (tree, "a"));
  fail_unless_equals_string (pt_tree_join (tree, "b"), "a");
  assert_valid (tree);
  fail_if (pt_tree_set_capacity (tree, "nobody", 1, 0));
}
GST_END_TEST;

/* max-children caps a member below k; the next member in breadth-first
 * order takes the rest, and placement moves on when it is reached. */
GST_START_TEST (test_max_children_respected)
{
  g_autoptr (PtTree) tree = pt_tree_new ("src", 4, 2);
  fail_unless_equals_string (pt_tree_join (tree, "a"), "src");
  fail_unless_equals_string (pt_tree_join (tree, "b"), "src");
  fail_unless (pt_tree_set_capacity (tree, "a", 1, 0));
  fail_unless (pt_tree_set_capacity (tree, "b", 3, 0));
  /* above k it changes nothing */
  fail_unless_equals_string (pt_tree_join (tree, "c"), "a");
  const char *expected[] = { "b", "b", "b", "c", "c", "c", "c" };
  for (guint i = 0; i < G_N_ELEMENTS (expected); i++) {
    g_autofree char *id = g_strdup_printf ("n%u", i);
    fail_unless_equals_string (pt_tree_join (tree, id), expected[i]);
    assert_valid (tree);
  }
  fail_unless_equals_int (pt_tree_get_n_children (tree, "a"), 1);
  fail_unless_equals_int (pt_tree_get_n_children (tree, "b"), 3);
  fail_unless (pt_tree_set_capacity (tree, "c", 9, 0));
  fail_unless_equals_int (pt_tree_get_capacity (tree, "c"), 4);   /* min (k, 9) */
  /* a reconnect never lands above a cap either */
  for (guint i = 0; i < 10; i++) {
    pt_tree_reconnect (tree, "n6");
    fail_unless (pt_tree_get_n_children (tree, "a") <= 1);
    fail_unless (pt_tree_get_n_children (tree, "b") <= 3);
    assert_valid (tree);
  }
}
GST_END_TEST;

/* An upload budget counts only once the tree knows its bitrate; then
 * (children + 1) x bitrate <= budget. */
GST_START_TEST (test_upload_budget_respected)
{
  g_autoptr (PtTree) tree = pt_tree_new ("src", 4, 1);
  fail_unless_equals_string (pt_tree_join (tree, "a"), "src");
  fail_unless (pt_tree_set_capacity (tree, "a", -1, 1000));
  /* bitrate unknown: the budget means nothing, k applies */
  fail_unless_equals_int (pt_tree_get_capacity (tree, "a"), 4);
  pt_tree_set_bitrate_kbps (tree, 400);
  fail_unless_equals_int (pt_tree_get_bitrate_kbps (tree), 400);
  fail_unless_equals_int (pt_tree_get_capacity (tree, "a"), 2);   /* 1000 / 400 */
  fail_unless_equals_string (pt_tree_join (tree, "b"), "a");
  fail_unless_equals_string (pt_tree_join (tree, "c"), "a");
  /* a is full by its budget (3 x 400 > 1000): b takes the next */
  fail_unless_equals_string (pt_tree_join (tree, "d"), "b");
  /* both limits: the lower one wins */
  fail_unless (pt_tree_set_capacity (tree, "b", 1, 4000));
  fail_unless_equals_string (pt_tree_join (tree, "e"), "c");
  /* a budget below one copy of the stream: a leaf */
  fail_unless (pt_tree_set_capacity (tree, "c", -1, 399));
  fail_unless (pt_tree_is_leaf (tree, "c"));
  fail_unless_equals_string (pt_tree_join (tree, "f"), "d");
  assert_valid (tree);
  fail_unless_equals_int (pt_tree_get_n_children (tree, "a"), 2);
  fail_unless_equals_int (pt_tree_get_n_children (tree, "b"), 1);
  /* c keeps the child it had (declared limits are soft) */
  fail_unless_equals_int (pt_tree_get_n_children (tree, "c"), 1);
}
GST_END_TEST;

/* Breadth-first order is kept among the members with room: a full or
 * leaf-only member is skipped, not the level. */
GST_START_TEST (test_capacity_keeps_bfs_order)
{
  g_autoptr (PtTree) tree = pt_tree_new ("src", 2, 3);
  const char *depth1[] = { "a", "b", "c" };
  for (guint i = 0; i < 3; i++)
    fail_unless_equals_string (pt_tree_join (tree, depth1[i]), "src");
  fail_unless (pt_tree_set_capacity (tree, "a", 0, 0));
  fail_unless (pt_tree_set_capacity (tree, "b", 1, 0));
  /* depth 1 in order: a (leaf), b (1), c (2); then depth 2 in order */
  const char *expected[] = { "b", "c", "c", "d", "d", "e", "e", "f", "f" };
  for (guint i = 0; i < G_N_ELEMENTS (expected); i++) {
    g_autofree char *id = g_strdup_printf ("%c", 'd' + i);
    fail_unless_equals_string (pt_tree_join (tree, id), expected[i]);
  }
  assert_valid (tree);
  fail_unless_equals_int (pt_tree_get_depth (tree, "d"), 2);
  fail_unless_equals_int (pt_tree_get_depth (tree, "g"), 3);
  fail_unless_equals_int (pt_tree_get_n_children (tree, "a"), 0);
}
GST_END_TEST;

/* Shedding moves the newest child (with its subtree) to the first member
 * with room and lowers the member's max-children; with no room elsewhere the
 * child stays and the member takes no more. */
GST_START_TEST (test_shed)
{
  g_autoptr (PtTree) tree = pt_tree_new ("src", 3, 1);
  PtMove move;
  fail_unless_equals_string (pt_tree_join (tree, "r"), "src");
  fail_unless_equals_string (pt_tree_join (tree, "a"), "r");
  fail_unless_equals_string (pt_tree_join (tree, "b"), "r");
  fail_unless_equals_string (pt_tree_join (tree, "c"), "r");
  fail_unless_equals_string (pt_tree_join (tree, "x"), "a");   /* r full */
  fail_if (pt_tree_shed (tree, "x", &move));                    /* no child */
  fail_unless (pt_tree_shed (tree, "r", &move));
  fail_unless_equals_string (move.peer, "c");                   /* the newest */
  fail_unless_equals_string (move.parent, "a");
  fail_unless_equals_int (pt_tree_get_max_children (tree, "r"), 2);
  fail_unless_equals_int (pt_tree_get_n_children (tree, "r"), 2);
  assert_valid (tree);
  /* r no longer takes a third child */
  fail_unless_equals_string (pt_tree_join (tree, "y"), "a");
  fail_unless_equals_string (pt_tree_join (tree, "z"), "b");
  /* a subtree moves with its head */
  fail_unless (pt_tree_shed (tree, "a", &move));
  fail_unless_equals_string (move.peer, "y");
  fail_unless_equals_string (move.parent, "b");
  assert_valid (tree);

  /* nobody else with room: the child stays, r takes no more */
  g_autoptr (PtTree) small = pt_tree_new ("src", 2, 1);
  fail_unless_equals_string (pt_tree_join (small, "r"), "src");
  fail_unless_equals_string (pt_tree_join (small, "a"), "r");
  fail_unless (pt_tree_set_capacity (small, "a", 0, 0));
  fail_if (pt_tree_shed (small, "r", &move));
  fail_unless_equals_string (pt_tree_get_parent (small, "a"), "r");
  fail_unless_equals_int (pt_tree_get_max_children (small, "r"), 1);
  fail_unless (pt_tree_join (small, "b") == NULL);
  assert_valid (small);
}
GST_END_TEST;

static Suite *
tree_suite (void)
{
  Suite *s = suite_create ("tree");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_breadth_first_placement);
  tcase_add_test (tc, test_rejoin_excludes_own_subtree);
  tcase_add_test (tc, test_reconnect_avoids_old_parent);
  tcase_add_test (tc, test_remove_reparents_orphans_with_subtrees);
  tcase_add_test (tc, test_attach_and_rename_root);
  tcase_add_test (tc, test_leaves);
  tcase_add_test (tc, test_max_children_zero_is_leaf);
  tcase_add_test (tc, test_max_children_respected);
  tcase_add_test (tc, test_upload_budget_respected);
  tcase_add_test (tc, test_capacity_keeps_bfs_order);
  tcase_add_test (tc, test_shed);
  tcase_add_test (tc, test_randomized_operations);
  return s;
}

GST_CHECK_MAIN (tree);
