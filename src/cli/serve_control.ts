/**
 * What `serve` answers on its control port (`control.ts`): it makes,
 * revokes and lists the listener's invites, and saves them to the host
 * ticket file.
 *
 * @module
 */
import { WebRTCTransportError } from "../errors.ts";
import type { WebRTCListener } from "../webrtc_listener.ts";
import type { ControlRequest } from "./control.ts";
import { parseInviteSpec } from "./invites.ts";

/** What `serve` answers on its control port. */
export async function answerControl(
  listener: WebRTCListener,
  request: ControlRequest,
  save: () => Promise<void>,
): Promise<Record<string, unknown>> {
  switch (request?.op) {
    case "invite": {
      const { name, tools } = parseInviteSpec(
        `${request.name}${Array.isArray(request.tools) ? `=${request.tools.join(",")}` : ""}`,
        "invite",
      );
      const expiresAt = request.expiresAt === undefined ? undefined : new Date(request.expiresAt);
      const ticket = await listener.invite({
        name,
        ...(tools ? { tools } : {}),
        ...(expiresAt ? { expiresAt } : {}),
      });
      await save();
      return { ticket };
    }
    case "revoke": {
      const { closed } = await listener.revoke(String(request.name));
      await save();
      return { closed };
    }
    case "list":
      return {
        invites: listener.invites.map(({ name, expiresAt, tools, connected, agents }) => ({
          name,
          ...(expiresAt ? { expiresAt: expiresAt.toISOString() } : {}),
          ...(tools ? { tools } : {}),
          connected,
          agents,
        })),
      };
    default:
      throw new WebRTCTransportError('The request\'s "op" is not invite, revoke or list');
  }
}
