/* libpeertree — umbrella header.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include "peertree-client.h"
#include "peertree-message.h"
#include "peertree-stream.h"
