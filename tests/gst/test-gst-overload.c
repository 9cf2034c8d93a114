/* The overload verdict of a relay (gst/pt-overload.c), ticks fed by hand:
 * sustained loss on most children with a clean parent link is an overload;
 * loss on one child, loss that is not sustained, or loss that comes from
 * upstream is not; after a verdict the next one needs a hold-off and a new
 * full window.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gst/check/gstcheck.h>
#include "gst/pt-overload.h"

/* child losses as "id=fraction" pairs */
static GHashTable *
losses (const char *first, ...)
{
  GHashTable *h = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  va_list ap;
  va_start (ap, first);
  for (const char *id = first; id; id = va_arg (ap, const char *)) {
    gdouble v = va_arg (ap, gdouble);
    g_hash_table_insert (h, g_strdup (id), g_memdup2 (&v, sizeof v));
  }
  va_end (ap);
  return h;
}

static gboolean
tick3 (PtOverload *o, gdouble a, gdouble b, gdouble c, gdouble parent)
{
  g_autoptr (GHashTable) h = losses ("a", a, "b", b, "c", c, NULL);
  return pt_overload_tick (o, h, parent);
}

GST_START_TEST (test_sustained_loss_on_most_children)
{
  PtOverload *o = pt_overload_new (3, 0.05, 0.01, 2);
  fail_if (tick3 (o, 0.2, 0.1, 0.0, 0.0));
  fail_if (tick3 (o, 0.2, 0.1, 0.0, 0.0));
  /* third tick: a and b (2 of 3) lost > 5 % on average, the parent link 0 */
  fail_unless (tick3 (o, 0.2, 0.1, 0.0, 0.0));
  /* hold-off (2 ticks), then a new window (3) before the next verdict */
  for (guint i = 0; i < 4; i++)
    fail_if (tick3 (o, 0.3, 0.3, 0.3, 0.0), "verdict again at tick %u", i);
  fail_unless (tick3 (o, 0.3, 0.3, 0.3, 0.0));
  pt_overload_free (o);
}
GST_END_TEST;

GST_START_TEST (test_not_an_overload)
{
  PtOverload *o = pt_overload_new (3, 0.05, 0.01, 2);
  /* one child of three: its own downlink */
  for (guint i = 0; i < 6; i++)
    fail_if (tick3 (o, 0.5, 0.0, 0.01, 0.0));
  /* loss that comes from upstream: the parent link loses too */
  for (guint i = 0; i < 6; i++)
    fail_if (tick3 (o, 0.2, 0.2, 0.2, 0.03));
  pt_overload_reset (o);
  /* not sustained: a burst of one tick in three */
  for (guint i = 0; i < 9; i++)
    fail_if (tick3 (o, i % 3 ? 0.0 : 0.12, i % 3 ? 0.0 : 0.12, 0.0, 0.0), "tick %u", i);
  /* the parent link unknown: no verdict */
  for (guint i = 0; i < 6; i++)
    fail_if (tick3 (o, 0.3, 0.3, 0.3, -1));
  /* a single child: never (shedding it would leave the relay idle) */
  for (guint i = 0; i < 6; i++) {
    g_autoptr (GHashTable) h = losses ("a", 0.5, NULL);
    fail_if (pt_overload_tick (o, h, 0.0));
  }
  pt_overload_free (o);
}
GST_END_TEST;

/* a child that left is forgotten; a new one needs a full window */
GST_START_TEST (test_children_come_and_go)
{
  PtOverload *o = pt_overload_new (3, 0.05, 0.01, 0);
  for (guint i = 0; i < 2; i++) {
    g_autoptr (GHashTable) h = losses ("a", 0.2, "b", 0.2, NULL);
    fail_if (pt_overload_tick (o, h, 0.0));
  }
  /* b leaves, c arrives: a alone has a full window, 1 of 2 is not most */
  for (guint i = 0; i < 2; i++) {
    g_autoptr (GHashTable) h = losses ("a", 0.2, "c", 0.2, NULL);
    fail_if (pt_overload_tick (o, h, 0.0), "tick %u", i);
  }
  g_autoptr (GHashTable) h = losses ("a", 0.2, "c", 0.2, NULL);
  fail_unless (pt_overload_tick (o, h, 0.0));
  pt_overload_free (o);
}
GST_END_TEST;

static Suite *
overload_suite (void)
{
  Suite *s = suite_create ("overload");
  TCase *tc = tcase_create ("overload");
  tcase_add_test (tc, test_sustained_loss_on_most_children);
  tcase_add_test (tc, test_not_an_overload);
  tcase_add_test (tc, test_children_come_and_go);
  suite_add_tcase (s, tc);
  return s;
}

GST_CHECK_MAIN (overload);
