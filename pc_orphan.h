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

/* pc_orphan.h: listeners that no running pool accepts (their only pool
 * is kept down) are answered 503 by the parent, not left to fill up
 * their listen backlog. */

#ifndef PC_ORPHAN_H
#define PC_ORPHAN_H

#include <sys/types.h>

/* Parent, once per round of its maintenance loop. */
void pc_orphan_check(void);

/* Parent, when a generation's configuration is in place. */
void pc_orphan_init(void);

/* Parent: 1 if 'pid', just reaped, was one of its helpers ('failed':
 * it gave up, exiting with a status other than 0; one killed, by the
 * parent or by a signal sent before it was ready, did not). */
int pc_orphan_reaped(pid_t pid, int failed);

#endif /* PC_ORPHAN_H */
