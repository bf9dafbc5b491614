package pybeat.nodelauncher;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Runs one embedded search node, or a small cluster of them, inside this JVM on free loopback
 * ports, for pybeat's integration tests.
 *
 * <p>Arguments: {@code --home DIR} (required), {@code --nodes N} (default 1),
 * {@code --cluster NAME}, and {@code -Ekey=value} node settings applied to every node.
 * Prints, one line each: {@code PORTS <i> <http> <transport>} for every node up front,
 * {@code READY <i> http://127.0.0.1:<port>} when a node's HTTP port is serving,
 * {@code STOPPED <i>}, {@code FAILED <i> <reason>}. Reads commands on stdin: {@code stop <i>},
 * {@code start <i>} (same ports and data directory), {@code quit}. End of stdin also quits, so
 * the nodes never outlive the test process that started them.
 */
public final class Launcher {

    /** Builds and starts one node of a given engine from flat string settings. */
    public interface Engine {
        AutoCloseable start(Map<String, String> settings) throws Exception;
    }

    private final Engine engine;
    private final Path home;
    private final String cluster;
    private final int count;
    private final Map<String, String> extra;
    private final int[] httpPorts;
    private final int[] transportPorts;
    private final AutoCloseable[] running;

    private Launcher(Engine engine, Path home, String cluster, int count, Map<String, String> extra) throws IOException {
        this.engine = engine;
        this.home = home;
        this.cluster = cluster;
        this.count = count;
        this.extra = extra;
        this.httpPorts = new int[count];
        this.transportPorts = new int[count];
        this.running = new AutoCloseable[count];
        for (int i = 0; i < count; i++) {
            httpPorts[i] = freePort();
            transportPorts[i] = freePort();
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            s.setReuseAddress(true);
            return s.getLocalPort();
        }
    }

    private Map<String, String> settings(int i) throws IOException {
        Path nodeHome = home.resolve("node-" + i);
        Files.createDirectories(nodeHome.resolve("data"));
        Files.createDirectories(nodeHome.resolve("logs"));
        Files.createDirectories(nodeHome.resolve("config"));
        Map<String, String> s = new LinkedHashMap<>();
        s.put("cluster.name", cluster);
        s.put("node.name", "node-" + i);
        s.put("path.home", nodeHome.toString());
        s.put("path.data", nodeHome.resolve("data").toString());
        s.put("path.logs", nodeHome.resolve("logs").toString());
        s.put("network.host", "127.0.0.1");
        s.put("http.port", Integer.toString(httpPorts[i]));
        s.put("transport.port", Integer.toString(transportPorts[i]));
        s.put("http.type", "netty4");
        s.put("transport.type", "netty4");
        s.put("cluster.routing.allocation.disk.threshold_enabled", "false");
        if (count == 1) {
            s.put("discovery.type", "single-node");
        } else {
            List<String> seeds = new ArrayList<>();
            List<String> masters = new ArrayList<>();
            for (int j = 0; j < count; j++) {
                seeds.add("127.0.0.1:" + transportPorts[j]);
                masters.add("node-" + j);
            }
            s.put("discovery.seed_hosts", String.join(",", seeds));
            s.put("cluster.initial_master_nodes", String.join(",", masters));
        }
        s.putAll(extra);
        return s;
    }

    private static synchronized void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    private void startAsync(int i) {
        Thread t = new Thread(() -> {
            long t0 = System.nanoTime();
            try {
                AutoCloseable node = engine.start(settings(i));
                synchronized (running) {
                    running[i] = node;
                }
                say("READY " + i + " http://127.0.0.1:" + httpPorts[i] + " " + (System.nanoTime() - t0) / 1_000_000 + "ms");
            } catch (Throwable e) {
                say("FAILED " + i + " " + e.toString().replace('\n', ' '));
                e.printStackTrace();
            }
        }, "start-node-" + i);
        t.setDaemon(true);
        t.start();
    }

    private void stop(int i) {
        AutoCloseable node;
        synchronized (running) {
            node = running[i];
            running[i] = null;
        }
        if (node != null) {
            try {
                node.close();
            } catch (Exception e) {
                say("FAILED " + i + " close: " + e);
            }
        }
        say("STOPPED " + i);
    }

    private void run() throws IOException {
        for (int i = 0; i < count; i++) {
            say("PORTS " + i + " " + httpPorts[i] + " " + transportPorts[i]);
        }
        // Start every node at once: a fresh cluster elects its master only when a quorum is up.
        for (int i = 0; i < count; i++) {
            startAsync(i);
        }
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            String[] parts = line.trim().split("\\s+");
            if (parts.length == 2 && parts[0].equals("stop")) {
                stop(Integer.parseInt(parts[1]));
            } else if (parts.length == 2 && parts[0].equals("start")) {
                startAsync(Integer.parseInt(parts[1]));
            } else if (parts[0].equals("quit")) {
                break;
            } else if (!parts[0].isEmpty()) {
                say("ERROR unknown command: " + line);
            }
        }
        for (int i = 0; i < count; i++) {
            stop(i);
        }
        say("BYE");
    }

    /** Parses the command line and runs until {@code quit} or end of stdin. */
    public static void main(Engine engine, String[] args) throws Exception {
        Path home = null;
        int nodes = 1;
        String cluster = "pybeat-test";
        Map<String, String> extra = new LinkedHashMap<>();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("--home")) {
                home = Paths.get(args[++i]).toAbsolutePath();
            } else if (a.equals("--nodes")) {
                nodes = Integer.parseInt(args[++i]);
            } else if (a.equals("--cluster")) {
                cluster = args[++i];
            } else if (a.startsWith("-E") && a.contains("=")) {
                String kv = a.substring(2);
                int eq = kv.indexOf('=');
                extra.put(kv.substring(0, eq), kv.substring(eq + 1));
            } else {
                throw new IllegalArgumentException("unknown argument: " + a);
            }
        }
        if (home == null) {
            throw new IllegalArgumentException("--home DIR is required");
        }
        new Launcher(engine, home, cluster, nodes, extra).run();
        System.exit(0);
    }
}
