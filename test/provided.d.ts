import 'vitest';

/** What test/global-setup.ts starts once and hands to every integration test through inject(). */
declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    temporalNamespace: string;
    /** Superuser URL of the test PostgreSQL; tests create their own databases on it. */
    postgresAdminUrl: string;
    etcdEndpoints: string[];
    influxUrl: string;
    /** Directory holding vmlinuz and initramfs.cpio.gz of the test guest. */
    guestImageDir: string;
    temporalCli: string;
  }
}
