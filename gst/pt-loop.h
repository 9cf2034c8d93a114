/* peertree — a GMainContext running in its own thread, for the elements
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Each element owns one PtLoop. The PeerTreeClient is created inside it (it
 * binds to the thread-default context at creation) and every link callback
 * and client signal runs there, so element state touched by signalling needs
 * no lock beyond what streaming threads share.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _PtLoop PtLoop;

/* Starts the thread; returns once its context is running. */
PtLoop *pt_loop_new (const gchar *thread_name);
GMainContext *pt_loop_get_context (PtLoop *loop);
/* Queues @func on the loop (never runs it inline). */
void pt_loop_invoke (PtLoop *loop, GSourceFunc func, gpointer data, GDestroyNotify notify);
/* Runs @func on the loop and waits for it to return (inline if called from
 * the loop thread). */
void pt_loop_invoke_sync (PtLoop *loop, GSourceFunc func, gpointer data);
gboolean pt_loop_is_current (PtLoop *loop);
/* Stops the loop after the sources already queued have run, joins the
 * thread and frees it. Not from the loop thread. */
void pt_loop_free (PtLoop *loop);

G_END_DECLS
