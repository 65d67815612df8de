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

/* pc_nofile.h: the open files limit, raised to what the pools need. */

#ifndef PC_NOFILE_H
#define PC_NOFILE_H

#include "httpd.h"

/* Parent, once the pools are known (each generation), before the
 * descriptors they need are opened. */
void pc_nofile_raise(server_rec *s, int startup);

#endif /* PC_NOFILE_H */
