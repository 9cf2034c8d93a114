/* peertree GStreamer elements — is this relay's uplink the bottleneck?
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "pt-overload.h"

typedef struct {
  GArray *samples;              /* gdouble, the last window ticks */
} Child;

struct _PtOverload {
  guint window, holdoff;
  gdouble child_threshold, parent_threshold;
  GHashTable *children;         /* id -> Child */
  GArray *parent;               /* gdouble, the last window ticks */
  guint skip;                   /* ticks still ignored */
};

static void
child_free (gpointer data)
{
  Child *c = data;
  g_array_unref (c->samples);
  g_free (c);
}

static void
push (GArray *a, gdouble v, guint window)
{
  g_array_append_val (a, v);
  if (a->len > window)
    g_array_remove_index (a, 0);
}

static gdouble
mean (GArray *a)
{
  gdouble sum = 0;
  for (guint i = 0; i < a->len; i++)
    sum += g_array_index (a, gdouble, i);
  return a->len ? sum / a->len : 0;
}

PtOverload *
pt_overload_new (guint window, gdouble child_threshold, gdouble parent_threshold, guint holdoff)
{
  PtOverload *o = g_new0 (PtOverload, 1);
  o->window = MAX (window, 1);
  o->holdoff = holdoff;
  o->child_threshold = child_threshold;
  o->parent_threshold = parent_threshold;
  o->children = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, child_free);
  o->parent = g_array_new (FALSE, FALSE, sizeof (gdouble));
  return o;
}

void
pt_overload_free (PtOverload *o)
{
  if (!o)
    return;
  g_hash_table_unref (o->children);
  g_array_unref (o->parent);
  g_free (o);
}

void
pt_overload_reset (PtOverload *o)
{
  g_hash_table_remove_all (o->children);
  g_array_set_size (o->parent, 0);
}

gboolean
pt_overload_tick (PtOverload *o, GHashTable *children_loss, gdouble parent_loss)
{
  GHashTableIter it;
  gpointer key, value;

  if (o->skip > 0) {
    o->skip--;
    return FALSE;
  }
  /* children gone: forgotten */
  g_hash_table_iter_init (&it, o->children);
  while (g_hash_table_iter_next (&it, &key, NULL))
    if (!g_hash_table_contains (children_loss, key))
      g_hash_table_iter_remove (&it);
  g_hash_table_iter_init (&it, children_loss);
  while (g_hash_table_iter_next (&it, &key, &value)) {
    Child *c = g_hash_table_lookup (o->children, key);
    if (!c) {
      c = g_new0 (Child, 1);
      c->samples = g_array_new (FALSE, FALSE, sizeof (gdouble));
      g_hash_table_insert (o->children, g_strdup (key), c);
    }
    push (c->samples, CLAMP (*(gdouble *) value, 0.0, 1.0), o->window);
  }
  if (parent_loss < 0) {
    g_array_set_size (o->parent, 0);    /* a full clean window again */
    return FALSE;
  }
  push (o->parent, parent_loss, o->window);

  guint n = g_hash_table_size (o->children), lossy = 0;
  if (n < 2 || o->parent->len < o->window || mean (o->parent) >= o->parent_threshold)
    return FALSE;
  g_hash_table_iter_init (&it, o->children);
  while (g_hash_table_iter_next (&it, NULL, &value)) {
    Child *c = value;
    if (c->samples->len >= o->window && mean (c->samples) > o->child_threshold)
      lossy++;
  }
  if (lossy * 2 <= n)
    return FALSE;
  pt_overload_reset (o);
  o->skip = o->holdoff;
  return TRUE;
}
