/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 *
 * Unless required by applicable law or agreed to in writing, software
 * distributed under the License is distributed on an "AS IS" BASIS,
 * WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 * See the License for the specific language governing permissions and
 * limitations under the License.
 */

/* pc_park.h: keep-alive connections given back to the dispatch pool wait
 * for their next request without holding a worker thread. */

#ifndef PC_PARK_H
#define PC_PARK_H

#include "pc_handoff.h"

/* Child start, before the workers: parking, in a dispatch pool's
 * child of 'threads' workers in scoreboard slot 'slot' (its
 * process_score's keep_alive counts the parked connections).  Returns
 * the descriptor that becomes readable when a parked connection has its
 * next request (the workers wait on it with the listeners and the
 * channel), or -1 if there is no parking. */
int pc_park_init(apr_pool_t *pchild, int slot, int threads);

/* A worker is about to wait for a job (1) or has stopped waiting (0). */
void pc_park_idle(int idle);

/* A worker received 'passed': if it was given back between two requests
 * and its next request does not come within a moment, parks it (or
 * closes it if the child is stopping).
 * Returns 1 if parked (the descriptor is parking's now), 0 if the worker
 * should serve it. */
int pc_park_offer(const pc_passed_t *passed);

/* A worker woke on pc_park_init's descriptor: takes a connection whose
 * next request has come, its bytes copied into 'buf'.  Returns 1 if
 * there was one. */
int pc_park_take(pc_passed_t *out, char *buf);

/* A worker took a job other than a parked connection: if connections
 * are ready, makes sure another worker wakes for them. */
void pc_park_nudge(void);

/* The child stops: closes every parked connection, as an idle
 * keep-alive connection is closed at a stop. */
void pc_park_stop(void);

#endif /* PC_PARK_H */
