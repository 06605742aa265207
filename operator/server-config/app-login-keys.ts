/**
 * The operator's record of the app's login, kept in the credentials Secret beside the password the
 * user asks for (ADR 0025 for Postgres, ADR 0027 for RabbitMQ): the login the app's URLs name, the
 * password it has on the servers (the user's key may be ahead of it while a rotation runs), and the
 * login being retired after a rotation. Absent: the app's login is the one the Secret names, with
 * the user's password. The same keys in every tier's Secret, so one secret manager policy fits all.
 */
export const APP_LOGIN_KEYS = {
  login: 'app-login',
  password: 'app-login-password',
  retiring: 'app-retiring-login',
} as const;
