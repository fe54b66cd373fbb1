package drum.java;

import com.datarobot.drum.BasePredictor;
import py4j.GatewayServer;

/**
 * The JVM side of drum's Java bridge: instantiates the predictor class, then serves it over a py4j gateway on
 * 127.0.0.1. Arguments: --class-name CLASS [--port PORT] (0, the default, picks a free port). Once listening it
 * prints `DRUM_JAVA_GATEWAY_PORT <port>` on stdout, the line drum waits for.
 */
public class EntryPoint {
    private final BasePredictor predictor;

    public EntryPoint(String className) throws Exception {
        Class<?> cls = Class.forName(className);
        this.predictor = (BasePredictor) cls.getConstructor(String.class).newInstance((String) null);
    }

    public BasePredictor getPredictor() {
        return predictor;
    }

    public static void main(String[] args) throws Exception {
        String className = null;
        int port = 0;
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--class-name") && i + 1 < args.length) {
                className = args[++i];
            } else if (args[i].equals("--port") && i + 1 < args.length) {
                port = Integer.parseInt(args[++i]);
            } else {
                System.err.println("unknown argument: " + args[i]);
                System.exit(2);
            }
        }
        if (className == null) {
            System.err.println("--class-name must be given");
            System.exit(2);
        }
        EntryPoint entryPoint = new EntryPoint(className);
        GatewayServer server = new GatewayServer.GatewayServerBuilder(entryPoint).javaPort(port).build();
        server.start();
        System.out.println("DRUM_JAVA_GATEWAY_PORT " + server.getListeningPort());
        System.out.flush();
    }
}
