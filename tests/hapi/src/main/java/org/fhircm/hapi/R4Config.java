package org.fhircm.hapi;

import ca.uhn.fhir.jpa.config.r4.JpaR4Config;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.annotation.Import;

/** A FHIR R4 (4.0.1) server: HAPI's R4 DAOs and providers over the common storage. */
@Configuration
@Import({JpaR4Config.class, ServerConfig.class})
public class R4Config {}
