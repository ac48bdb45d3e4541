/**
 * Data-subject requests received by letter, phone, email or in person, with their legal
 * deadlines: one calendar month from receipt, extendable on a recorded reason by two more.
 */

/**
 * The module's HTTP routes. Recording needs `requests:record`; the list, a single request,
 * extending and closing need `requests:manage`. Free texts are sealed under the request's own
 * key and every decision, refusals included, is audited in the same unit as its effect.
 */
export { subjectRequestRoutes } from './requests.routes.js';
