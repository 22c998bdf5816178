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
import type { PageRequest } from "../core/paging.js";
import { checkClusterSelector, type Queue, type QueueState } from "../core/queue.js";
import type { QueueRepository } from "../store/queue-repository.js";
import { checkNamedKey, checkOrgField, listPage, requireMessage, stateFilter, toTimestamp } from "./common.js";

/** QueueService: validates requests, then hands them to the queue repository. */
export function queueService(queues: QueueRepository): ServiceImpl<typeof QueueService> {
  return {
    async createQueue(request) {
      const queue = requireMessage(request.queue, "queue");
      const violations = new Violations();
      checkOrgField(queue.org, "queue.org", violations);
      violations.add("queue.name", checkClusterName(queue.name));
      if (queue.pool !== "") violations.add("queue.pool", checkResourceName(queue.pool));
      checkClusterSelector(queue.clusters, "queue.clusters", violations);
      violations.throwIfAny();
      const created = await queues.create({
        org: queue.org,
        name: queue.name,
        pool: queue.pool || DEFAULT_POOL_NAME,
        clusters: queue.clusters,
      });
      return { queue: toQueueMessage(created) };
    },

    async getQueue(request) {
      checkNamedKey(request.org, request.name, checkClusterName);
      return { queue: toQueueMessage(await queues.get(request.org, request.name)) };
    },

    async listQueues(request) {
      const violations = new Violations();
      if (request.pool !== "") violations.add("pool", checkResourceName(request.pool));
      const filter = { pool: request.pool, state: stateFilter<QueueState>(QueueStateEnum, request.state, "state", violations) };
      const fetch = (page: PageRequest) => queues.list(request.org, filter, page);
      const { items, nextPageToken } = await listPage(request, filter, violations, fetch, toQueueMessage, (queue) => [queue.name]);
      return { queues: items, nextPageToken };
    },

    async updateQueue(request) {
      const queue = requireMessage(request.queue, "queue");
      const violations = new Violations();
      checkOrgField(queue.org, "queue.org", violations);
      violations.add("queue.name", checkClusterName(queue.name));
      checkClusterSelector(queue.clusters, "queue.clusters", violations);
      violations.throwIfAny();
      return { queue: toQueueMessage(await queues.update(queue.org, queue.name, queue.clusters, queue.etag, queue.pool)) };
    },

    async drainQueue(request) {
      checkNamedKey(request.org, request.name, checkClusterName);
      return { queue: toQueueMessage(await queues.setState(request.org, request.name, "DRAINED")) };
    },

    async activateQueue(request) {
      checkNamedKey(request.org, request.name, checkClusterName);
      return { queue: toQueueMessage(await queues.setState(request.org, request.name, "ACTIVE")) };
    },

    async deleteQueue(request) {
      checkNamedKey(request.org, request.name, checkClusterName);
      await queues.delete(request.org, request.name, request.etag);
      return {};
    },
  };
}

export function toQueueMessage(queue: Queue): QueueMessage {
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
    revision: BigInt(queue.revision),
  });
}
