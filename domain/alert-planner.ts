import {
  comparatorOf,
  DEFAULT_ALERT_MARGIN,
  DEFAULT_COOLDOWN_PERIODS,
  fires,
  safeLine,
  type AlertMetric,
} from './alert-rule.ts';

/**
 * The load planner of migration-alert rules: which guests leave which alerted host, and where to. Pure, so the
 * alertCycle workflow, `POST /v1/migration-alerts/:id/plan` and the offline `vmctl plan --snapshot` give the
 * same answer for the same snapshot.
 */

export interface PlannerRule {
  metric: AlertMetric;
  threshold: number;
  periodS: number;
  /** Fraction of the threshold kept as headroom (default DEFAULT_ALERT_MARGIN). */
  margin?: number;
  /** A guest moved by any rule within this many seconds stays (default DEFAULT_COOLDOWN_PERIODS periods). */
  cooldownS?: number;
  /** Host ids watched; empty or absent: every host. */
  sourceHosts?: string[];
  /** Host ids that may receive guests; empty or absent: every host. */
  targetHosts?: string[];
  /** Guest ids that may move; empty or absent: every guest. */
  sourceGuests?: string[];
}

export interface PlannerHost {
  id: string;
  name: string;
  cpus: number;
  memoryBytes: number;
  /** The rule's metric over the last period (percent for cpu, bytes for memory); null when there is no data. */
  current: number | null;
  /** False for a host that takes no new guests (disabled, offline, in maintenance); default true. */
  acceptsGuests?: boolean;
  /**
   * A migration to or from it is running or ended within the last period, so its mean does not show it yet:
   * it neither fires nor receives this cycle (else one overload would move a guest every cycle until the
   * mean caught up).
   */
  settling?: boolean;
}

export interface PlannerGuest {
  id: string;
  name: string;
  hostId: string;
  vcpus: number;
  memoryMb: number;
  /** The guest's own cpu percent of its vCPUs over the last period; null when there is no data. */
  usage: number | null;
  /** Its last period means, oldest first. */
  history: number[];
  /** ISO time of its last move by any rule, or null. */
  lastMigratedAt: string | null;
  /** A migration of it is in flight. */
  migrating?: boolean;
}

export interface AlertPlanInput {
  now: string;
  rule: PlannerRule;
  hosts: PlannerHost[];
  guests: PlannerGuest[];
}

export interface PlannedMove {
  guest: string;
  from: string;
  to: string;
  /** What the guest weighs on its source (cpu: percent of the source's cpus; memory: bytes). */
  score: number;
  /** What it weighs on the target (cpu rescaled to the target's cpus). */
  targetScore: number;
  /** The target's value before this move, with the moves planned before it. */
  targetCurrent: number;
}

export interface UnplacedGuest {
  guest: string;
  reasons: string[];
}

export interface AlertedHost {
  host: string;
  value: number;
  /** Its value once the planned moves are done. */
  after: number;
  /** The planned moves bring it to the safe side of threshold and margin. */
  relieved: boolean;
}

export interface AlertPlan {
  moves: PlannedMove[];
  unplaced: UnplacedGuest[];
  /** Every host with data: its value after the planned moves, by host id. */
  hostAfter: Record<string, number>;
  alerted: AlertedHost[];
  /** Watched hosts with no value: they cannot fire. */
  noData: string[];
  /** Watched hosts past the threshold that were left alone because they are settling. */
  settling: string[];
}

/** How many failing targets a reason list names before it counts the rest. */
export const MAX_REASONS_PER_GUEST = 20;

const MIB = 1024 * 1024;

const fixed = (n: number) => n.toFixed(6);

function stdev(values: number[]): number {
  if (values.length < 2) return 0;
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length);
}

interface Target {
  host: PlannerHost;
  load: number;
  memoryUsed: number;
  /** Sum of its guests' cpu swings (stdev, in its percent): a steady target is preferred. */
  swing: number;
}

export function planAlertMoves(input: AlertPlanInput): AlertPlan {
  const { rule } = input;
  const isCpu = comparatorOf(rule.metric) === 'gt';
  const margin = rule.margin ?? DEFAULT_ALERT_MARGIN;
  const line = safeLine(rule.metric, rule.threshold, margin);
  const cooldownMs = (rule.cooldownS ?? DEFAULT_COOLDOWN_PERIODS * rule.periodS) * 1000;
  const now = Date.parse(input.now);
  const only = (ids: string[] | undefined) => (ids && ids.length > 0 ? new Set(ids) : null);
  const sourceHosts = only(rule.sourceHosts);
  const targetHosts = only(rule.targetHosts);
  const sourceGuests = only(rule.sourceGuests);

  const guestsByHost = new Map<string, PlannerGuest[]>();
  for (const g of input.guests) {
    const list = guestsByHost.get(g.hostId) ?? [];
    list.push(g);
    guestsByHost.set(g.hostId, list);
  }

  /** cpu: the guest's share of a host's cpus; memory: its bytes. */
  const scoreOn = (g: PlannerGuest, h: PlannerHost) =>
    isCpu ? ((g.usage ?? 0) * g.vcpus) / h.cpus : g.memoryMb * MIB;
  const swingOn = (g: PlannerGuest, h: PlannerHost) =>
    isCpu ? (stdev(g.usage === null ? g.history : [...g.history, g.usage]) * g.vcpus) / h.cpus : 0;

  const load = new Map<string, number>();
  for (const h of input.hosts) if (h.current !== null) load.set(h.id, h.current);

  const watched = input.hosts.filter((h) => !sourceHosts || sourceHosts.has(h.id));
  const noData = watched.filter((h) => h.current === null).map((h) => h.id);
  const excess = (h: PlannerHost) => (isCpu ? h.current! - line : line - h.current!);
  const firing = watched.filter((h) => h.current !== null && fires(rule.metric, h.current, rule.threshold));
  const settling = firing.filter((h) => h.settling).map((h) => h.id);
  const alertedHosts = firing
    .filter((h) => !h.settling)
    .sort((a, b) => excess(b) - excess(a) || a.id.localeCompare(b.id));
  /** Hosts guests leave in this plan: none of them receives one, or the plan could swap guests around. */
  const sources = new Set<string>();

  // Least loaded first, so the reasons name the closest candidates and ties break the same way every run. A
  // host past the threshold stays a candidate, as in Cloudpods: its own value refuses it, with the reason.
  const targets: Target[] = input.hosts
    .filter((h) => h.current !== null && h.acceptsGuests !== false && (!targetHosts || targetHosts.has(h.id)))
    .map((h) => {
      const guests = guestsByHost.get(h.id) ?? [];
      return {
        host: h,
        load: h.current!,
        memoryUsed: guests.reduce((sum, g) => sum + g.memoryMb * MIB, 0),
        swing: guests.reduce((sum, g) => sum + swingOn(g, h), 0),
      };
    })
    .sort((a, b) => (isCpu ? a.load - b.load : b.load - a.load) || a.host.id.localeCompare(b.host.id));

  const moves: PlannedMove[] = [];
  const unplaced: UnplacedGuest[] = [];
  const alerted: AlertedHost[] = [];

  /** The best target for the guest, or why each candidate is refused. */
  const findTarget = (g: PlannerGuest, source: PlannerHost): { target: Target } | { reasons: string[] } => {
    let best: { target: Target; rank: number } | null = null;
    const reasons: string[] = [];
    let unnamed = 0;
    const refuse = (reason: string) => {
      if (reasons.length < MAX_REASONS_PER_GUEST) reasons.push(reason);
      else unnamed += 1;
    };
    for (const t of targets) {
      if (t.host.id === source.id) continue;
      if (t.host.settling) {
        refuse(`host:${t.host.name}: a migration to or from it is recent, its metrics do not show it yet`);
        continue;
      }
      if (sources.has(t.host.id)) {
        refuse(`host:${t.host.name}: guests leave it in this plan`);
        continue;
      }
      const score = scoreOn(g, t.host);
      const guestBytes = g.memoryMb * MIB;
      const name = t.host.name;
      if (t.memoryUsed + guestBytes > t.host.memoryBytes) {
        refuse(
          `host:${name}:memory_used(${t.memoryUsed}) + guest:${g.name}:memory(${guestBytes}) > memory(${t.host.memoryBytes})`,
        );
        continue;
      }
      const after = isCpu ? t.load + score : t.load - score;
      const sign = isCpu ? '+' : '-';
      const cmp = isCpu ? '>=' : '<=';
      const head = `host:${name}:current(${fixed(t.load)}) ${sign} guest:${g.name}:score(${fixed(score)}) ${cmp} threshold(${fixed(rule.threshold)})`;
      if (isCpu ? after >= rule.threshold : after <= rule.threshold) {
        refuse(head);
        continue;
      }
      if (isCpu ? after >= line : after <= line) {
        refuse(`${head} - margin(${fixed(Math.abs(rule.threshold - line))})`);
        continue;
      }
      const rank = isCpu ? after + t.swing : -after;
      if (!best || rank < best.rank) best = { target: t, rank };
    }
    if (best) return { target: best.target };
    if (unnamed > 0) reasons.push(`and ${unnamed} more hosts`);
    if (reasons.length === 0) reasons.push('no target host: none other has data and passes the rule filter');
    return { reasons };
  };

  const place = (g: PlannerGuest, source: PlannerHost, target: Target) => {
    sources.add(source.id);
    const score = scoreOn(g, source);
    const targetScore = scoreOn(g, target.host);
    moves.push({
      guest: g.id,
      from: source.id,
      to: target.host.id,
      score,
      targetScore,
      targetCurrent: target.load,
    });
    load.set(source.id, load.get(source.id)! + (isCpu ? -score : score));
    target.load += isCpu ? targetScore : -targetScore;
    target.memoryUsed += g.memoryMb * MIB;
    target.swing += swingOn(g, target.host);
    load.set(target.host.id, target.load);
  };

  for (const source of alertedHosts) {
    const value = source.current!;
    const need = isCpu ? value - line : line - value;
    const candidates: PlannerGuest[] = [];
    const excluded: UnplacedGuest[] = [];
    for (const g of guestsByHost.get(source.id) ?? []) {
      if (sourceGuests && !sourceGuests.has(g.id)) continue;
      if (g.migrating) excluded.push({ guest: g.id, reasons: ['already migrating'] });
      else if (g.lastMigratedAt !== null && now - Date.parse(g.lastMigratedAt) < cooldownMs) {
        excluded.push({
          guest: g.id,
          reasons: [`moved at ${g.lastMigratedAt}, within the cool-down of ${cooldownMs / 1000}s`],
        });
      } else if (isCpu && g.usage === null) excluded.push({ guest: g.id, reasons: ['no cpu usage data'] });
      else candidates.push(g);
    }
    // Steady load first: a guest whose usage swings relieves the host less reliably than its mean says.
    const reliable = (g: PlannerGuest) => scoreOn(g, source) - swingOn(g, source);
    candidates.sort((a, b) => reliable(b) - reliable(a) || a.id.localeCompare(b.id));

    const failed = new Map<string, string[]>();
    const tryPlace = (g: PlannerGuest): boolean => {
      if (failed.has(g.id)) return false;
      const found = findTarget(g, source);
      if ('target' in found) {
        place(g, source, found.target);
        return true;
      }
      failed.set(g.id, found.reasons);
      return false;
    };

    // One guest is the fewest: the steadiest that is enough on its own and fits somewhere.
    const enoughAlone = candidates
      .filter((g) => scoreOn(g, source) > need)
      .sort((a, b) => swingOn(a, source) - swingOn(b, source) || scoreOn(a, source) - scoreOn(b, source));
    let moved = false;
    for (const g of enoughAlone) if ((moved = tryPlace(g))) break;
    if (!moved) {
      // Else the heaviest first, skipping any that fits nowhere, so several smaller guests can do what a
      // large one cannot.
      let relieved = 0;
      for (const g of candidates) {
        if (relieved > need) break;
        if (tryPlace(g)) relieved += scoreOn(g, source);
      }
    }
    const after = load.get(source.id)!;
    const isRelieved = isCpu ? after < line : after > line;
    for (const [guest, reasons] of failed) unplaced.push({ guest, reasons });
    if (!isRelieved) unplaced.push(...excluded);
    alerted.push({ host: source.id, value, after, relieved: isRelieved });
  }

  const hostAfter: Record<string, number> = {};
  for (const [id, value] of load) hostAfter[id] = value;
  return { moves, unplaced, hostAfter, alerted, noData, settling };
}
