import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  QueueSchema,
  QueueService,
  QueueState as QueueStateEnum,
  type Queue as QueueMessage,
} from "../../gen/clusterplane/v1/queue_pb.js";
import { DEFAULT_POOL_NAME } from "../core/cluster-pool.js";
import { Violations } from "../core/errors.js";
import { checkClusterName, checkResourceName } from "../core/names.js";
import { nextPageToken, parsePageRequest } from "../core/paging.js";
import { checkClusterSelector, type Queue, type QueueState } from "../core/queue.js";
import type { QueueRepository } from "../store/queue-repository.js";
import { checkOrgField, requireMessage, toTimestamp } from "./common.js";

/** QueueService: validates requests, then hands them to the queue repository. */
export function queueService(queues: QueueRepository): ServiceImpl<typeof QueueService> {
  return {
    createQueue(request) {
      const queue = requireMessage(request.queue, "queue");
      const violations = new Violations();
      checkOrgField(queue.org, "queue.org", violations);
      violations.add("queue.name", checkClusterName(queue.name));
      if (queue.pool !== "") violations.add("queue.pool", checkResourceName(queue.pool));
      checkClusterSelector(queue.clusters, "queue.clusters", violations);
      violations.throwIfAny();
      const created = queues.create({
        org: queue.org,
        name: queue.name,
        pool: queue.pool || DEFAULT_POOL_NAME,
        clusters: queue.clusters,
      });
      return { queue: toMessage(created) };
    },

    getQueue(request) {
      checkKey(request.org, request.name);
      return { queue: toMessage(queues.get(request.org, request.name)) };
    },

    listQueues(request) {
      const violations = new Violations();
      checkOrgField(request.org, "org", violations);
      if (request.pool !== "") violations.add("pool", checkResourceName(request.pool));
      let state: QueueState | "" = "";
      if (request.state !== QueueStateEnum.UNSPECIFIED) {
        const name = QueueStateEnum[request.state];
        if (name === undefined) violations.add("state", `${request.state} is not a queue state`);
        state = (name ?? "") as QueueState | "";
      }
      const filter = { pool: request.pool, state };
      const fingerprint = JSON.stringify(filter);
      const page = parsePageRequest(request.pageSize, request.pageToken, fingerprint, violations);
      violations.throwIfAny();
      const result = queues.list(request.org, filter, page);
      const last = result.items.at(-1);
      return {
        queues: result.items.map(toMessage),
        nextPageToken: nextPageToken(result.hasMore, last ? [last.name] : [], fingerprint),
      };
    },

    updateQueue(request) {
      const queue = requireMessage(request.queue, "queue");
      const violations = new Violations();
      checkOrgField(queue.org, "queue.org", violations);
      violations.add("queue.name", checkClusterName(queue.name));
      checkClusterSelector(queue.clusters, "queue.clusters", violations);
      violations.throwIfAny();
      return { queue: toMessage(queues.update(queue.org, queue.name, queue.clusters, queue.etag, queue.pool)) };
    },

    drainQueue(request) {
      checkKey(request.org, request.name);
      return { queue: toMessage(queues.setState(request.org, request.name, "DRAINED")) };
    },

    activateQueue(request) {
      checkKey(request.org, request.name);
      return { queue: toMessage(queues.setState(request.org, request.name, "ACTIVE")) };
    },

    deleteQueue(request) {
      checkKey(request.org, request.name);
      queues.delete(request.org, request.name, request.etag);
      return {};
    },
  };
}

function checkKey(org: string, name: string): void {
  const violations = new Violations();
  checkOrgField(org, "org", violations);
  violations.add("name", checkClusterName(name));
  violations.throwIfAny();
}

function toMessage(queue: Queue): QueueMessage {
  return create(QueueSchema, {
    org: queue.org,
    name: queue.name,
    pool: queue.pool,
    clusters: queue.clusters,
    state: QueueStateEnum[queue.state],
    clusterManaged: queue.managedBy !== null,
    createTime: toTimestamp(queue.createTime),
    updateTime: toTimestamp(queue.updateTime),
    etag: queue.etag,
  });
}
