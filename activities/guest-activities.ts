import type { AgentCredentials } from './agent-credentials.ts';
import { ApplicationFailure } from '@temporalio/common';
import type { Db } from '../db/client.ts';
import { findGuest, findHost, recordEvent, setGuestStatus, type NewEvent } from '../db/inventory.ts';
import type { Guest } from '../db/schema.ts';
import type { GuestSpec } from '../domain/agent-contract.ts';
import { guestSpecOf } from '../domain/guest-spec.ts';
import { AgentClient } from './agent-client.ts';
import { agentCall } from './agent-errors.ts';

export interface GuestPlacement {
  guestId: string;
  hostId: string;
  hostName: string;
  agentUrl: string;
  spec: GuestSpec;
}

export interface GuestActivityDeps {
  db: Db;
  agentCredentials: AgentCredentials;
}

export function guestActivities({ db, agentCredentials }: GuestActivityDeps) {
  const agent = (url: string) => new AgentClient(url, agentCredentials);

  return {
    async loadGuestPlacement(guestId: string): Promise<GuestPlacement> {
      const guest = await findGuest(db, guestId);
      if (!guest) throw ApplicationFailure.nonRetryable(`guest ${guestId} not found`, 'NotFound');
      const host = await findHost(db, guest.hostId);
      if (!host) throw ApplicationFailure.nonRetryable(`host ${guest.hostId} not found`, 'NotFound');
      return {
        guestId,
        hostId: host.id,
        hostName: host.name,
        agentUrl: host.agentUrl,
        spec: guestSpecOf(guest),
      };
    },

    async defineGuestOnHost(p: GuestPlacement): Promise<void> {
      await agentCall(() => agent(p.agentUrl).defineGuest(p.spec));
    },

    async stopGuestOnHost(p: GuestPlacement): Promise<void> {
      await agentCall(() => agent(p.agentUrl).stopGuest(p.guestId));
    },

    async startGuestOnHost(p: GuestPlacement): Promise<void> {
      await agentCall(() => agent(p.agentUrl).startGuest(p.guestId));
    },

    async setGuestStatus(input: { guestId: string; status: Guest['status']; error: string | null }) {
      await setGuestStatus(db, input.guestId, input.status, input.error);
    },

    async recordEvent(event: NewEvent): Promise<void> {
      await recordEvent(db, event);
    },
  };
}
