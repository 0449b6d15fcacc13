/** The authenticated caller, set on every /api/v1 request by the auth hook (api/auth/auth.hook.ts). */
export interface AuthUser {
  id: number;
  username: string;
  isSuperAdmin: boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the auth hook for every /api/v1 route except `POST /api/v1/session`. */
    user: AuthUser;
    /** The session or API token that authenticated the request, and how it was sent. */
    credential: { id: number; kind: 'session' | 'token'; via: 'bearer' | 'cookie' };
  }
}
