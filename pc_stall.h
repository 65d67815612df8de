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

/* pc_stall.h: connections left waiting in the channel of a pool whose
 * children do not take them (stopped, hung, or every worker busy for
 * long).  The parent answers them 503 once they have waited
 * PerchildQueueTimeout with no sign of life from the pool. */

#ifndef PC_STALL_H
#define PC_STALL_H

#include "apr.h"

#include <sys/types.h>

/* Default PerchildQueueTimeout, in seconds. */
#define PC_DEFAULT_QUEUE_TIMEOUT 10

/* Parent, once per round of its maintenance loop. */
void pc_stall_check(void);

/* Parent: 1 if 'pid', just reaped, was the stall helper. */
int pc_stall_reaped(pid_t pid);

#endif /* PC_STALL_H */
