/** Data-subject requests received by letter, phone or email, with their legal deadlines. */
export { subjectRequestRoutes } from './requests.routes.js';
