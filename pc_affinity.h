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

#ifndef PC_AFFINITY_H
#define PC_AFFINITY_H

#include "perchild.h"

/* Parent, once per generation: the CPUs the server may use. */
void pc_affinity_init(void);

/* Parent, once the error log is open: warns when the listener buckets
 * cannot spread new connections over the CPUs children are pinned to. */
void pc_affinity_warn(server_rec *s);

/* How many channels ("ways") pool 'pl' has: 1 unless
 * PerchildCPUAffinity is On and the pool has 2+ children. */
int pc_affinity_ways(const pc_pool_t *pl);

/* Child, after fork: pins this child of 'pl' to its way's CPUs.
 * Returns the way (the channel this child reads). */
int pc_affinity_pin_child(const pc_pool_t *pl, int slot);

/* The way a sender on the current CPU passes to, of 'ways'. */
int pc_affinity_sender_way(int ways);

#endif /* PC_AFFINITY_H */
