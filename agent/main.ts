import { pathToFileURL } from 'node:url';
import { configOrExit } from '../domain/config/startup.ts';
import { exitOnSignal } from './exit-on-signal.ts';
import { consoleLogger, errorMessage } from './log.ts';
import { readAgentOptions } from './settings.ts';
import { startAgent } from './start-agent.ts';

export { startAgent, type RunningAgent } from './start-agent.ts';
export type { AgentOptions } from './settings.ts';

/**
 * `tsx agent/main.ts`, configured by the environment:
 *   AGENT_NAME (required)      host name reported in facts, liveness and metrics
 *   AGENT_HOST=127.0.0.1       interface to listen on (also the reported management address)
 *   AGENT_PORT (required)      port to listen on (0 = any free port)
 *   AGENT_DIR (required)       agent state: host-id, credential (this host's own, mode 0600), guests/<id>/
 *   AGENT_ENROLMENT_TOKEN      one-time vme_ token traded for this host's credential (POST /v1/hosts/enrol) when
 *                              <AGENT_DIR>/credential does not exist yet; callers of /v1 must present the credential
 *   AGENT_PEER_TOKEN           fleet-wide token the agents present to each other, accepted ONLY on the peer routes
 *                              (GET …/incoming, GET …/disks/:diskId/export, /v1/internal/*)
 *   AGENT_DRIVER=qemu          qemu | sim
 *   AGENT_URL                  advertised base URL (default http://AGENT_HOST:port)
 *   SHARED_STORAGE_DIR (req.)  shared disks live in <dir>/<guestId>/
 *   GUEST_IMAGE_DIR            default ${VMMIG_CACHE:-$HOME/.cache/vmmig}/guest-image
 *   AGENT_TLS_DIR              migration TLS: ca-cert.pem and this host's certificates in hosts/<AGENT_NAME>/,
 *                              default ${VMMIG_CACHE:-$HOME/.cache/vmmig}/tls
 *   AGENT_TLS_CA_KEY           CA key to issue this host's certificates with when missing (dev/test); default
 *                              <tlsDir>/ca-key.pem only when AGENT_TLS_DIR is unset
 *   AGENT_TLS_DN=CN={host}     subject DN of every host's certificate (a peer is admitted by it)
 *   ETCD_ENDPOINTS, ETCD_PREFIX, HEALTH_TTL_S=10      liveness lease
 *   ETCD_TLS_CA, ETCD_TLS_CERT, ETCD_TLS_KEY, ETCD_USERNAME, ETCD_PASSWORD   etcd client TLS and auth
 *   FENCE_ON_LEASE_LOSS=true                           SIGKILL the guests when the lease is not renewed within
 *                                                      60 % of the TTL (only while the API armed it: host flag
 *                                                      auto_migrate_on_host_down on)
 *   INFLUX_URL, INFLUX_DB=telegraf, METRICS_INTERVAL_S=10   metrics
 *   INFLUX_API=influxql (INFLUX_USERNAME, INFLUX_PASSWORD) | flux (INFLUX_TOKEN, INFLUX_ORG, INFLUX_BUCKET)
 *   API_URL                    enrol and register with the API when set (with this host's credential)
 *   MIGRATION_ADDRESS          address on the migration network, if any
 *   AGENT_NETWORKS=default     comma list of networks this host offers
 *   AGENT_CPUS, AGENT_MEMORY_MB                       override the host's size
 *   AGENT_CPU_MODEL, AGENT_MICROCODE, AGENT_KERNEL, AGENT_QEMU_VERSION, AGENT_SIM_LINK_MBPS   (sim)
 * Every variable is checked before anything starts; a bad environment exits 2 naming each bad variable
 * (docs/deployment.md has the table). SIGINT/SIGTERM stop the guests (their desired state is kept for the
 * next start), revoke the lease, exit 0.
 */
async function main(): Promise<void> {
  const options = configOrExit('agent', readAgentOptions, process.env);
  const log = consoleLogger(options.name);
  const agent = await startAgent({ ...options, log });
  exitOnSignal(log, () => agent.stop());
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error) => {
    console.error(`agent: ${errorMessage(error)}`);
    process.exit(1);
  });
}
