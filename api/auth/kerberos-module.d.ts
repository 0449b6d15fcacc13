/** The part of the `kerberos` package (mongodb-js, optional native addon) herd uses: the GSS acceptor side. */
declare module 'kerberos' {
  export interface KerberosServer {
    /** `user@REALM` once the context is established. */
    readonly username: string;
    /** The base64 token for the client (mutual authentication), if any. */
    readonly response: string | null;
    readonly contextComplete: boolean;
    step(challenge: string): Promise<string>;
  }
  /** `service` is a GSS host-based service name (`HTTP@host`) whose key is in the keytab (KRB5_KTNAME). */
  export function initializeServer(service: string): Promise<KerberosServer>;
  /** The keytab's principal for `service/hostname@…`. */
  export function principalDetails(service: string, hostname: string): Promise<string>;
  export interface KerberosClient {
    readonly response: string | null;
    step(challenge: string): Promise<string>;
  }
  export function initializeClient(
    service: string,
    options?: { mechOID?: number; principal?: string },
  ): Promise<KerberosClient>;
  export const GSS_MECH_OID_SPNEGO: number;
  export const GSS_MECH_OID_KRB5: number;
}
