/* peertree GStreamer elements — is this relay's uplink the bottleneck?
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Pure bookkeeping, no GStreamer: once a second (a tick) the relay hands in
 * the fraction of packets each child lost (from the child's RTCP receiver
 * reports) and the fraction it lost itself on its parent link. The relay
 * is overloaded when, over the last @window ticks, most of its children (at
 * least 2, more than half) lost more than @child_threshold on average while
 * its parent link lost less than @parent_threshold: the loss starts at its
 * own uplink, not upstream nor at one child's downlink. After a verdict the
 * history restarts, and @holdoff ticks are ignored first (the moved child's
 * reports, and the queue it left, take that long to clear), so that reports
 * are at least @holdoff + @window ticks apart.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _PtOverload PtOverload;

#define PT_OVERLOAD_WINDOW 3            /* ticks (s) of sustained loss */
#define PT_OVERLOAD_CHILD_LOSS 0.05     /* a child losing more is lossy */
#define PT_OVERLOAD_PARENT_LOSS 0.01    /* the parent link losing less is clean */
#define PT_OVERLOAD_HOLDOFF 4           /* ticks ignored after a verdict */

PtOverload *pt_overload_new (guint window, gdouble child_threshold, gdouble parent_threshold,
    guint holdoff);
void pt_overload_free (PtOverload *o);
/* One tick. @children_loss: child id -> gdouble* fraction lost since the
 * last tick, for each child with a receiver report (children absent are
 * forgotten). @parent_loss: the fraction lost on the parent link in that
 * tick, negative if unknown (then no verdict). TRUE: report the overload. */
gboolean pt_overload_tick (PtOverload *o, GHashTable *children_loss, gdouble parent_loss);
/* Forgets the history (new parent, children reset). */
void pt_overload_reset (PtOverload *o);

G_END_DECLS
