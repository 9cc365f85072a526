// The CRUDX bits of API.md §3 and what the signed-in user holds.
import { currentSession } from './api.js';

export const CREATE = 1;
export const READ = 2;
export const UPDATE = 4;
export const DELETE = 8;
export const EXECUTE = 16;

/** [bit, name, letter] in grid order (CRUDX). */
export const BITS = [
  [CREATE, 'Create', 'C'], [READ, 'Read', 'R'], [UPDATE, 'Update', 'U'], [DELETE, 'Delete', 'D'], [EXECUTE, 'Execute', 'X'],
];

/** Every resource with the bits it allows. */
export const RESOURCES = [
  ['apps', 15], ['beUsers', 15], ['bundles', 15], ['consumption', 2], ['dependencies', 15], ['deployments', 15],
  ['keys', 15], ['roles', 15], ['sources', 15], ['subscriptions', 15], ['tasks', 31], ['trainings', 6],
];

/** The bits the signed-in user holds on a resource. */
export function held(resource) {
  return currentSession()?.permissions?.[resource] ?? 0;
}

/** Whether the signed-in user holds `bit` on `resource`. The server still checks every request. */
export function can(resource, bit) {
  return (held(resource) & bit) === bit;
}
